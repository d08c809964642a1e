"""Helpers (no fixtures: those are in conftest.py) for tests that run real containers through the
ocirun command line: the runtime, bundles, mountinfo and cgroup lookups, probes."""

import copy
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OCIRUN = str(REPO / ".venv" / "bin" / "ocirun")
# every test cgroup goes below this (removed at the end of the session by conftest.py)
CGROUP_PREFIX = f"/ocirun-pytest-{os.getpid()}"


def default_config(rootfs: str, args: list[str], cgroups_path: str) -> dict:
    """`ocirun spec`'s template with terminal off, the given program and a test cgroup."""
    from ocirun.spec_template import default_spec

    config = copy.deepcopy(default_spec())
    config["process"]["terminal"] = False
    config["process"]["args"] = args
    config["root"] = {"path": rootfs, "readonly": True}
    config["linux"]["cgroupsPath"] = cgroups_path
    return config


class Runtime:
    """ocirun with a private --root; remembers its containers and removes them at teardown."""

    def __init__(self, root: Path, binary: str = OCIRUN) -> None:
        self.root = root
        self.binary = binary

    def __call__(self, *args: str, check: bool = False, timeout: float = 30, **kw):
        """Run one command; output goes through files, since a created container keeps the
        stdio it was given open (pipes would never reach end of file)."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.run(
                [self.binary, "--root", str(self.root), *args],
                stdout=out, stderr=err, timeout=timeout, **kw,
            )  # fmt: skip
            out.seek(0)
            err.seek(0)
            result = subprocess.CompletedProcess(
                proc.args, proc.returncode, out.read().decode(), err.read().decode()
            )
        if check and result.returncode != 0:
            raise AssertionError(f"ocirun {' '.join(args)} failed: {result.stderr}")
        return result

    def state(self, container_id: str) -> dict:
        return json.loads(self("state", container_id, check=True).stdout)

    def ids(self) -> list[str]:
        if not self.root.exists():
            return []
        return [p.name for p in self.root.iterdir()]

    def cleanup(self) -> None:
        for container_id in self.ids():
            self("delete", "--force", container_id, timeout=30)


class Bundle:
    """A bundle directory with a config that tests edit before creating the container."""

    def __init__(self, path: Path, config: dict) -> None:
        self.path = path
        self.config = config

    def write(self) -> str:
        (self.path / "config.json").write_text(json.dumps(self.config))
        return str(self.path)

    def own_rootfs(self, source: str) -> str:
        """Give the bundle a writable copy of the rootfs (for tests that write into it)."""
        target = self.path / "rootfs"
        shutil.copytree(source, target, symlinks=True)
        self.config["root"] = {"path": "rootfs", "readonly": False}
        return str(target)


def mounts_under(path: str) -> list[str]:
    """Mount points at or below path in our mount namespace."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mountpoint = line.split()[4]
            if mountpoint == path or mountpoint.startswith(path.rstrip("/") + "/"):
                found.append(mountpoint)
    return found


def unmount_under(path: str) -> None:
    for mountpoint in sorted(mounts_under(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", mountpoint], check=False)


def cgroup_dirs(cgroups_path: str) -> list[str]:
    """Directories of this cgroup path that exist in any mounted hierarchy."""
    found = []
    for base in Path("/sys/fs/cgroup").iterdir():
        candidate = base / cgroups_path.lstrip("/")
        if candidate.is_dir():
            found.append(str(candidate))
    return found


def remove_cgroup_tree(prefix: str) -> None:
    """rmdir a test's cgroup prefix (deepest first) in every hierarchy; kill what is left inside."""
    for base in Path("/sys/fs/cgroup").iterdir():
        top = base / prefix.lstrip("/")
        if not top.is_dir():
            continue
        dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for d in [*dirs, top]:
            procs = d / "cgroup.procs"
            if procs.exists():
                for pid in procs.read_text().split():
                    try:
                        os.kill(int(pid), 9)
                    except ProcessLookupError:
                        pass
            try:
                d.rmdir()
            except OSError:
                pass


USERNS_MAPPING = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def run_probe(ocirun, bundle, cid: str, script: str, expect_rc: int = 0) -> str:
    """Run `sh -c script` in the bundle's container; return its stdout."""
    bundle.config["process"]["args"] = ["sh", "-c", script]
    result = ocirun("run", "--bundle", bundle.write(), cid)
    assert result.returncode == expect_rc, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def create_fails(ocirun, bundle, cid: str) -> str:
    """Create must fail, leave no container behind; return the error output."""
    result = ocirun("create", "--bundle", bundle.write(), cid)
    assert result.returncode != 0, result.stdout
    assert ocirun("state", cid).returncode != 0
    return result.stderr


def mount_line(mountinfo: str, path: str) -> str:
    """The last mountinfo line of the mount at path (the visible one)."""
    lines = [line for line in mountinfo.splitlines() if line.split()[4:5] == [path]]
    assert lines, f"no mount at {path} in:\n{mountinfo}"
    return lines[-1]


def status_field(status: str, name: str) -> str:
    """A field of /proc/PID/status text."""
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return value.strip()
    raise AssertionError(f"no {name} in status")


def created_pid(ocirun, bundle, cid: str) -> int:
    """Create the container; return its init's host pid."""
    ocirun("create", "--bundle", bundle.write(), cid, check=True)
    return json.loads(ocirun("state", cid, check=True).stdout)["pid"]


def host_mounts(under) -> set[str]:
    """Mount points at or below a directory of the test (others' runs may mount elsewhere)."""
    return set(mounts_under(str(under)))


def has_ns(name: str) -> bool:
    return os.path.exists(f"/proc/self/ns/{name}")


def add_userns(config: dict, rootfs: str) -> None:
    """A new user namespace mapping the container's ids 0-65535 to 100000-165535."""
    config["root"]["path"] = rootfs
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = USERNS_MAPPING
    config["linux"]["gidMappings"] = USERNS_MAPPING
