"""Real container managers driving a runtime: containerd (ctr, runc v2 shim) and podman (conmon).

Both run privately: containerd from a config keeping its root, state and sockets in a directory
of ours; podman with its storage, run and temporary directories there. Helpers here also clean
up what a misbehaving runtime leaves: processes, mounts, cgroups.
"""

import difflib
import fcntl
import hashlib
import io
import json
import os
import pty
import select
import shutil
import signal
import struct
import subprocess
import tarfile
import termios
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 10  # seconds for any one command: a hung runtime must not hang the suite
CLEANUP_TIMEOUT = 5
IMAGE = "localhost/ocirun-busybox:latest"
CONTAINERD_CONFIG = """\
version = 2
root = "{home}/root"
state = "{home}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{home}/containerd.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "{home}/opt"
"""
SHIM_SOCKETS = Path("/run/containerd/s")
CGROUP_ROOT = Path("/sys/fs/cgroup")
# cgroup v2: the whole tree on a pure v2 host, beside the v1 hierarchies on a hybrid one.
CGROUP_V2 = (
    CGROUP_ROOT if (CGROUP_ROOT / "cgroup.controllers").exists() else CGROUP_ROOT / "unified"
)

# What a container sees of itself, minus what differs from one container to the next (hostname,
# mount sources and order, cgroup paths): two runtimes given the same config must agree on it.
PROBE = r"""
id; pwd; umask; ulimit -n; ulimit -u
grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status
env | grep -v '^HOSTNAME=' | sort
ls -l /dev | awk '{print $1, $5, $6, $NF}'
awk '{split($4, o, ","); print $2, $3, o[1]}' /proc/self/mounts | sort
"""

# ctr may drop a terminal's last output when the process exits right after writing it (it
# stops copying once the exit is reported): processes on a terminal linger before exiting.
LINGER = "sleep 0.5"
# A manager may set the terminal's size just after the start: wait for it.
TTY_AND_SIZE = f"""tty
for i in $(seq 50); do
    set -- $(stty size 2>/dev/null); [ "${{1:-0}}" != 0 ] && break; sleep 0.1
done
echo "$@"; {LINGER}
"""


@dataclass(frozen=True)
class Runtime:
    name: str
    path: Path
    default_root: Path  # its state directory when no --root is given, as podman calls it


RUNTIMES = {
    "runc": Runtime("runc", Path("/usr/sbin/runc"), Path("/run/runc")),
    "ocirun": Runtime("ocirun", REPO / ".venv/bin/ocirun", Path("/run/ocirun")),
}
RUNC = RUNTIMES["runc"]


def selected_runtimes() -> list[str]:
    names = os.environ.get("OCIRUN_CLIENT_RUNTIMES", ",".join(RUNTIMES)).split(",")
    unknown = set(names) - set(RUNTIMES)
    if unknown:
        raise pytest.UsageError(f"OCIRUN_CLIENT_RUNTIMES: unknown runtimes {sorted(unknown)}")
    return names


def missing_tools(*names: str) -> str:
    """Why a module needing these programs must be skipped; "" when all are installed."""
    missing = [name for name in names if shutil.which(name) is None]
    return f"not installed: {', '.join(missing)}" if missing else ""


def run(argv: list[str], *, input: str | None = None, timeout: int = TIMEOUT, check: bool = True):
    """Run argv under `timeout -k` (ctr forwards SIGTERM to the container instead of dying)."""
    proc = subprocess.run(
        ["timeout", "-k", "5", str(timeout), *argv],
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if proc.returncode in (124, -signal.SIGKILL):  # `timeout` sent TERM, or KILL 5 s later
        raise AssertionError(f"timed out after {timeout}s: {argv}\nstderr: {proc.stderr}")
    if check and proc.returncode != 0:
        raise AssertionError(
            f"exit status {proc.returncode}: {argv}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
        )
    return proc


def run_quietly(argv: list[str]) -> str:
    """Run a clean-up command: its stdout, whether it failed or timed out."""
    return subprocess.run(
        ["timeout", "-k", "2", str(CLEANUP_TIMEOUT), *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    ).stdout


def run_in_pty(argv: list[str], *, rows: int = 30, cols: int = 100, timeout: int = TIMEOUT):
    """Run argv with a new pseudo-terminal as its stdio; return (exit status, output sans CRs)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(
        ["timeout", "-k", "5", str(timeout), *argv],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    output = b""
    deadline = time.monotonic() + timeout + 10
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 1)[0]:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every holder of the terminal has closed it
                break
            if not chunk:
                break
            output += chunk
        status = proc.wait(timeout=10)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return status, output.decode(errors="replace").replace("\r", "")


def spawn_daemon(argv: list[str], log: Path) -> subprocess.Popen:
    """A daemon of the tests' own, in a session of its own, its output in log."""
    with open(log, "w") as log_file:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def wait_for_daemon(daemon: subprocess.Popen, log: Path, name: str, up, timeout: float = 10):
    """Until up() says the daemon serves; its log in the error if it exited instead."""
    wait_for(lambda: daemon.poll() is not None or up(), name, timeout=timeout)
    assert daemon.poll() is None, f"{name} failed:\n{log.read_text()}"


def wait_for(predicate, what: str, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def cgroup_dir(pid: int, controller: str) -> Path:
    """The cgroup of process pid: in controller's v1 hierarchy if it has one, else in v2."""
    entries = [line.split(":", 2) for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()]
    for _, controllers, path in entries:
        if controller in controllers.split(","):
            return CGROUP_ROOT / controller / path.lstrip("/")
    path = next(path for hierarchy, _, path in entries if hierarchy == "0")
    return CGROUP_V2 / path.lstrip("/")


def cgroup_file(pid: int, controller: str, v1_name: str, v2_name: str) -> Path:
    """A file of controller in the cgroup of pid, by its name in cgroup v1 or v2."""
    directory = cgroup_dir(pid, controller)
    return directory / (v2_name if directory.is_relative_to(CGROUP_V2) else v1_name)


def frozen(pid: int) -> bool:
    """Whether the cgroup freezer holds process pid."""
    state = cgroup_file(pid, "freezer", "freezer.state", "cgroup.freeze").read_text()
    return state.strip() in ("FROZEN", "1")


def cgroup_dirs(relative: str) -> list[Path]:
    """The directories of the cgroup `relative` in every hierarchy (v1 controllers, v2)."""
    roots = [CGROUP_ROOT, *CGROUP_ROOT.iterdir()]
    return [root / relative for root in roots if (root / relative).is_dir()]


def remove_cgroup(relative: str):
    """Kill whatever is left in the cgroup `relative` and its descendants, then remove them."""
    for top in cgroup_dirs(relative):
        for directory, _, _ in sorted(os.walk(top), key=lambda entry: -len(entry[0])):
            remove_cgroup_dir(Path(directory))


def remove_cgroup_dir(path: Path, attempts: int = 50):
    for thaw_file, thawed in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
        if (path / thaw_file).exists():
            (path / thaw_file).write_text(thawed)
    for _ in range(attempts):
        for pid in (path / "cgroup.procs").read_text().split():
            kill_pid(int(pid))
        try:
            path.rmdir()
            return
        except OSError:
            time.sleep(0.1)


def kill_pid(pid: int):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def processes() -> list[Path]:
    return [proc for proc in Path("/proc").iterdir() if proc.name.isdigit()]


def pids_of(program: str, marker: str) -> list[int]:
    """Pids of the processes running `program` whose command line mentions `marker`."""
    pids = []
    for proc in processes():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if Path(argv[0].decode()).name == program and marker.encode() in b" ".join(argv):
            pids.append(int(proc.name))
    return pids


def pids_using(directory: Path) -> list[int]:
    """Pids of the processes rooted under directory (containers) or naming it in their argv."""
    pids = []
    for proc in processes():
        try:
            root = os.readlink(proc / "root")
            argv = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if root.startswith(f"{directory}/") or f"{directory}/".encode() in argv:
            pids.append(int(proc.name))
    return pids


def mounts_under(directory: Path) -> list[str]:
    prefix = str(directory) + "/"
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    return [point for point in points if point.startswith(prefix)]


def remove_tree(directory: Path):
    """Kill the processes using directory, unmount everything under it, then remove it."""
    for pid in pids_using(directory):
        kill_pid(pid)
    for point in sorted(set(mounts_under(directory)), key=len, reverse=True):
        run_quietly(["umount", "-R", point])
    run(["rm", "-rf", "--one-file-system", str(directory)])


def make_oci_layout(rootfs: Path, out: Path, name: str, image_config: dict | None = None):
    """Write an OCI image layout tar holding one image `name` whose single layer is rootfs.

    image_config: the image's config (Cmd, Entrypoint, ...); by default PATH and `sh`.
    """
    layer_buf = io.BytesIO()
    with tarfile.open(fileobj=layer_buf, mode="w") as layer_tar:
        layer_tar.add(rootfs, arcname=".")
    layer = layer_buf.getvalue()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
            **(image_config or {"Cmd": ["sh"]}),
        },
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(layer)]},
    }
    config_blob = json.dumps(config).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.oci.image.config.v1+json", config_blob),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", layer)],
    }
    manifest_blob = json.dumps(manifest).encode()
    manifest_descriptor = descriptor(manifest["mediaType"], manifest_blob)
    manifest_descriptor["annotations"] = {"io.containerd.image.name": name}
    index = {"schemaVersion": 2, "manifests": [manifest_descriptor]}
    with tarfile.open(out, "w") as image_tar:
        add_tar_file(image_tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        add_tar_file(image_tar, "index.json", json.dumps(index).encode())
        for blob in (layer, config_blob, manifest_blob):
            add_tar_file(image_tar, "blobs/sha256/" + sha256_digest(blob).split(":")[1], blob)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, blob: bytes) -> dict:
    return {"mediaType": media_type, "digest": sha256_digest(blob), "size": len(blob)}


def add_tar_file(archive: tarfile.TarFile, name: str, data: bytes):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


class Containerd:
    """A private containerd daemon; containers go in a namespace of this session's own."""

    def __init__(self, home: Path, namespace: str):
        self.home = home
        self.namespace = namespace
        self.socket = home / "containerd.sock"
        self.daemon: subprocess.Popen | None = None
        self.ids: set[str] = set()  # of every container made, to find what their shims left

    def argv(self, *args: str) -> list[str]:
        return ["ctr", f"--address={self.socket}", f"--namespace={self.namespace}", *args]

    def ctr(self, *args: str, **kwargs):
        return run(self.argv(*args), **kwargs)

    def start(self):
        self.home.mkdir()
        config = self.home / "config.toml"
        config.write_text(CONTAINERD_CONFIG.format(home=self.home))
        log = self.home / "containerd.log"
        self.daemon = spawn_daemon(["containerd", f"--config={config}"], log)
        wait_for_daemon(self.daemon, log, "containerd", self.socket.exists)

    def import_image(self, rootfs: Path):
        make_oci_layout(rootfs, self.home / "image.tar", IMAGE)
        self.ctr("images", "import", str(self.home / "image.tar"))

    def remove(self, cid: str):
        """Delete the container's task (killing it) and the container; ignore what is not there."""
        run_quietly(self.argv("tasks", "delete", "--force", cid))
        run_quietly(self.argv("containers", "delete", cid))

    def stop(self):
        """Remove what is left in the namespace, stop the daemon, kill the shims it left."""
        if self.daemon is None:
            return
        if self.daemon.poll() is None:
            for cid in run_quietly(self.argv("containers", "list", "--quiet")).split():
                self.remove(cid)
            self.daemon.terminate()
        try:
            self.daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()
        for pid in pids_using(self.home):  # shims, and runtime commands they wait for
            kill_pid(pid)
        for cid in self.ids:
            self.shim_socket(cid).unlink(missing_ok=True)
        remove_cgroup(self.namespace)

    def shim_socket(self, cid: str) -> Path:
        """Where the shim of container cid listens (containerd 1.6 names it by this hash)."""
        key = os.path.join(str(self.socket), self.namespace, cid)
        return SHIM_SOCKETS / hashlib.sha256(key.encode()).hexdigest()


class Manager(ABC):
    """A container manager's command line, bound to one runtime."""

    @abstractmethod
    def argv(self, *args: str) -> list[str]:
        """The manager's command line for args."""

    @abstractmethod
    def run(self, *command: str, options=(), **kwargs):
        """Run command in a new container, attached, removing it once it exits."""

    def __call__(self, *args: str, **kwargs):
        return run(self.argv(*args), **kwargs)

    def in_terminal(self, *args: str, **kwargs):
        """Run with a pseudo-terminal as stdio: (exit status, output)."""
        return run_in_pty(self.argv(*args), **kwargs)

    def spawn(self, *args: str) -> subprocess.Popen:
        """Start in the background, stdout readable line by line."""
        return subprocess.Popen(
            ["timeout", "-k", "5", str(TIMEOUT), *self.argv(*args)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )

    def probe(self) -> str:
        """What a new container sees of itself (PROBE's output)."""
        return self.run("sh", "-c", PROBE).stdout


def view_diff(reference: str, view: str) -> str:
    """A unified diff of two PROBE outputs, for assertion messages."""
    lines = difflib.unified_diff(
        reference.splitlines(), view.splitlines(), "runc", "runtime", lineterm=""
    )
    return "\n".join(lines)


class Ctr(Manager):
    """`ctr` running containers with one runtime; removes the containers it made."""

    def __init__(self, containerd: Containerd, runtime: Runtime, prefix: str):
        self.containerd = containerd
        self.runtime = runtime
        self.prefix = prefix
        self.ids: list[str] = []

    def argv(self, *args: str) -> list[str]:
        return self.containerd.argv(*args)

    def new_id(self) -> str:
        cid = f"{self.prefix}-{len(self.ids)}"
        self.ids.append(cid)
        self.containerd.ids.add(cid)
        return cid

    def run_argv(self, *command: str, options=(), rootfs: Path | None = None, cid: str = ""):
        """`ctr run` arguments for command in a new container (or cid) of the image or rootfs."""
        runtime_options = ["--runc-binary", str(self.runtime.path)]
        runtime_options += ["--runc-root", str(self.containerd.home / "runtime-root")]
        source = ["--rootfs", str(rootfs)] if rootfs else [IMAGE]
        return ["run", *runtime_options, *options, *source, cid or self.new_id(), *command]

    def run(self, *command: str, options=(), rootfs: Path | None = None, **kwargs):
        """Run command in a new container, attached, removing it once it exits."""
        return self(*self.run_argv(*command, options=("--rm", *options), rootfs=rootfs), **kwargs)

    def start(self, *command: str, options=()) -> str:
        """Start command in a new detached container; return its id."""
        cid = self.new_id()
        self(*self.run_argv(*command, options=("--detach", *options), cid=cid))
        return cid

    def task(self, cid: str) -> tuple[int, str]:
        """The pid and status of the container's task; (0, "ABSENT") when it has none."""
        for line in self("tasks", "list").stdout.splitlines()[1:]:
            task, pid, status = line.split()
            if task == cid:
                return int(pid), status
        return 0, "ABSENT"

    def remove_all(self):
        for cid in self.ids:
            self.containerd.remove(cid)


PODMAN_RUN_OPTIONS = [
    "--network=none",
    "--ulimit=nofile=1024:1024",  # podman's default needs CAP_SYS_RESOURCE, missing here
    "--ulimit=nproc=32768:32768",
]


@dataclass(frozen=True)
class PodmanStore:
    """podman's private storage, run and temporary directories."""

    home: Path
    # podman makes libpod_parent (and libpod_parent/conmon) and leaves them: ours to remove
    # when they were not there before
    made_parent: bool = field(default_factory=lambda: not cgroup_dirs("libpod_parent"))

    def argv(self, *args: str) -> list[str]:
        home = self.home
        return [
            "env",  # conmon makes its console sockets (conmon-term.*) in $TMPDIR: keep them ours
            f"TMPDIR={home}/tmp",
            "podman",
            f"--root={home}/storage",
            f"--runroot={home}/run",
            f"--tmpdir={home}/tmp",
            f"--network-config-dir={home}/networks",
            "--storage-driver=overlay",
            "--cgroup-manager=cgroupfs",
            "--events-backend=file",
            *args,
        ]

    def runtime_link(self, runtime: Runtime) -> Path:
        """runtime under the name `runc`: podman passes --log only to runtimes it knows by name."""
        link = self.home / "runtimes" / runtime.name / "runc"
        if not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(runtime.path)
        return link

    def created_ids(self) -> list[str]:
        """The full ids of every container ever created in this store (from its event log)."""
        events = ["events", "--stream=false", "--filter=event=create", "--format={{.ID}}"]
        return run_quietly(self.argv(*events)).split()

    def import_image(self, rootfs: Path):
        self.home.mkdir()
        tar = self.home / "rootfs.tar"
        run(["tar", "-C", str(rootfs), "-cf", str(tar), "."])
        run(self.argv("import", str(tar), IMAGE))

    def stop(self):
        """Remove every container made here, and what failing runtimes left of them."""
        for link in (self.home / "runtimes").glob("*/runc"):
            run_quietly(self.argv(f"--runtime={link}", "rm", "--all", "--force", "--time=0"))
        for pid in pids_using(self.home):
            kill_pid(pid)
        for cid in self.created_ids():
            remove_cgroup(f"libpod_parent/libpod-{cid}")
            for runtime in RUNTIMES.values():
                shutil.rmtree(runtime.default_root / cid, ignore_errors=True)
        if self.made_parent:
            remove_cgroup("libpod_parent")


class Podman(Manager):
    """podman running containers with one runtime; removes the containers it made."""

    def __init__(self, store: PodmanStore, runtime: Runtime, prefix: str):
        self.store = store
        self.runtime_link = store.runtime_link(runtime)
        self.prefix = prefix
        self.names: list[str] = []

    def argv(self, *args: str) -> list[str]:
        return self.store.argv(f"--runtime={self.runtime_link}", *args)

    def run_argv(self, *command: str, options=(), seccomp: bool = False) -> list[str]:
        """`podman run` arguments for command; seccomp: keep podman's default profile."""
        confinement = [] if seccomp else ["--security-opt=seccomp=unconfined"]
        return ["run", *PODMAN_RUN_OPTIONS, *confinement, *options, IMAGE, *command]

    def run(self, *command: str, options=(), seccomp: bool = False, **kwargs):
        """Run command in a new container, attached, removing it once it exits."""
        return self(*self.run_argv(*command, options=("--rm", *options), seccomp=seccomp), **kwargs)

    def start(self, *command: str) -> str:
        """Start command in a new detached container; return its name."""
        name = f"{self.prefix}-{len(self.names)}"
        self.names.append(name)
        self(*self.run_argv(*command, options=("--detach", f"--name={name}")))
        return name

    def inspect(self, name: str, template: str) -> str:
        return self("inspect", f"--format={template}", name).stdout.strip()

    def remove_all(self):
        if self.names:
            run_quietly(self.argv("rm", "--force", "--time=0", *self.names))
