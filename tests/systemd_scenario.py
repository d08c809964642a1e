"""Run inside a guest whose PID 1 is systemd (tests/test_cgroups_systemd.py boots it): the
same containers under a runtime with --systemd-cgroup, and one JSON line of what was seen.

    systemd_scenario.py RUNTIME ROOTFS     RUNTIME: a runtime binary (ocirun, runc)

Each step records facts (unit properties from systemctl, cgroup files, exit codes) and
asserts nothing: the test compares them with what they should be, for each runtime.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

CGROUP = "/sys/fs/cgroup"
SHOWN = [
    "ActiveState", "LoadState", "ControlGroup", "Slice", "Delegate", "MemoryMax", "MemoryLow",
    "TasksMax", "CPUQuotaPerSecUSec", "CPUQuotaPeriodUSec", "CPUWeight", "TimeoutStopUSec",
    "CollectMode", "DevicePolicy", "Description",
]  # fmt: skip


def run(argv: list[str]) -> subprocess.CompletedProcess:
    """Exit status and output; the output goes through files, not pipes, which a
    container's init would hold open after `create` (it keeps its stdio)."""
    print("+", *argv, file=sys.stderr, flush=True)  # progress, for a guest that hangs
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=120)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(argv, done.returncode, out.read(), err.read())


class Runtime:
    def __init__(self, binary: str, root: str) -> None:
        self.binary, self.root = binary, root

    def __call__(self, *args: str) -> subprocess.CompletedProcess:
        return run([self.binary, "--root", self.root, "--systemd-cgroup", *args])


def show(unit: str) -> dict[str, str]:
    out = subprocess.run(
        ["systemctl", "show", unit, *(f"--property={name}" for name in SHOWN)],
        capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def files(directory: str, *names: str) -> dict[str, str | None]:
    result = {}
    for name in names:
        try:
            with open(f"{directory}/{name}") as f:
                result[name] = f.read().strip()
        except OSError:
            result[name] = None
    return result


def bundle(rootfs: str, name: str, args: list[str], cgroups_path: str | None,
           resources: dict | None = None, annotations: dict | None = None) -> str:  # fmt: skip
    """A runc-generated busybox bundle in /tmp, edited."""
    path = f"/tmp/bundles/{name}"
    os.makedirs(path)
    subprocess.run(["runc", "spec"], cwd=path, check=True)
    with open(f"{path}/config.json") as f:
        config = json.load(f)
    config["root"]["path"] = rootfs  # shared, read-only
    config["process"].update(terminal=False, args=args)
    config["linux"].pop("cgroupsPath", None)
    if cgroups_path is not None:
        config["linux"]["cgroupsPath"] = cgroups_path
    config["linux"]["resources"] = {**config["linux"].get("resources", {}), **(resources or {})}
    if annotations:
        config["annotations"] = annotations
    with open(f"{path}/config.json", "w") as f:
        json.dump(config, f)
    return path


def init_cgroup(runtime: Runtime, cid: str) -> str:
    state = json.loads(runtime("state", cid).stdout or "{}")
    try:
        with open(f"/proc/{state.get('pid')}/cgroup") as f:
            return f.read().strip()
    except OSError:
        return ""


def gone(runtime: Runtime, cid: str, unit: str, directory: str) -> dict:
    runtime("kill", cid, "KILL")
    deadline = time.monotonic() + 20
    while json.loads(runtime("state", cid).stdout or "{}").get("status") not in ("stopped", None):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    deleted = runtime("delete", cid)
    return {"delete_rc": deleted.returncode, "delete_err": deleted.stderr,
            "after": show(unit), "dir_after": os.path.isdir(directory)}  # fmt: skip


def limits(runtime: Runtime, rootfs: str, name: str) -> dict:
    """A scope with limits: properties and files at create, enforced, changed by update."""
    cid = f"{name}-limits"
    unit = f"ocirun-{cid}.scope"
    directory = f"{CGROUP}/system.slice/{unit}"
    resources = {
        "memory": {"limit": 64 << 20},
        "pids": {"limit": 20},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000},
    }
    annotations = {
        "org.systemd.property.TimeoutStopSec": "uint64 7",
        "org.systemd.property.CollectMode": "'inactive-or-failed'",
    }
    path = bundle(rootfs, cid, ["sleep", "1000"], f"system.slice:ocirun:{cid}", resources,
                  annotations)  # fmt: skip
    result: dict = {}
    created = runtime("create", "--bundle", path, cid)
    result["create_rc"], result["create_err"] = created.returncode, created.stderr
    result["created"] = show(unit)
    result["files"] = files(directory, "memory.max", "pids.max", "cpu.max", "cpu.weight")
    result["init_cgroup"] = init_cgroup(runtime, cid)
    result["start_rc"] = runtime("start", cid).returncode
    # held: an allocation past memory.max is killed, forks stop at pids.max
    hog = runtime("exec", cid, "dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1")
    result["hog_rc"] = hog.returncode
    result["memory_events"] = files(directory, "memory.events")["memory.events"]
    forks = runtime(
        "exec",
        cid,
        "sh",
        "-c",
        "for i in $(seq 40); do sleep 300 </dev/null >/dev/null 2>&1 & done 2>/dev/null",
    )
    result["forks_rc"] = forks.returncode
    result["pids_after_forks"] = files(directory, "pids.current", "pids.events")
    paused = runtime("pause", cid).returncode
    status = json.loads(runtime("state", cid).stdout or "{}").get("status")
    result["pause"] = [paused, status, files(directory, "cgroup.freeze")["cgroup.freeze"]]
    result["resume_rc"] = runtime("resume", cid).returncode
    updated = runtime("update", "--memory", "128m", "--pids-limit", "30", "--cpu-quota",
                      "20000", "--cpu-period", "100000", cid)  # fmt: skip
    result["update_rc"], result["update_err"] = updated.returncode, updated.stderr
    result["updated"] = show(unit)
    result["updated_files"] = files(directory, "memory.max", "pids.max", "cpu.max")
    result.update(gone(runtime, cid, unit, directory))
    return result


def nested(runtime: Runtime, rootfs: str, name: str) -> dict:
    """A scope in a slice of a slice (sdtest-nested.slice: /sdtest.slice/sdtest-nested.slice)."""
    cid = f"{name}-nested"
    unit = f"ocirun-{cid}.scope"
    path = bundle(rootfs, cid, ["sleep", "1000"], f"sdtest-nested.slice:ocirun:{cid}")
    created = runtime("create", "--bundle", path, cid)
    result = {"create_rc": created.returncode, "create_err": created.stderr,
              "created": show(unit), "init_cgroup": init_cgroup(runtime, cid)}  # fmt: skip
    directory = f"{CGROUP}/sdtest.slice/sdtest-nested.slice/{unit}"
    result.update(gone(runtime, cid, unit, directory))
    return result


def default(runtime: Runtime, rootfs: str, name: str) -> dict:
    """No cgroupsPath: the runtime's own prefix, in system.slice."""
    cid = f"{name}-default"
    path = bundle(rootfs, cid, ["sleep", "1000"], None)
    created = runtime("create", "--bundle", path, cid)
    result = {"create_rc": created.returncode, "create_err": created.stderr,
              "init_cgroup": init_cgroup(runtime, cid)}  # fmt: skip
    unit = result["init_cgroup"].rpartition("/")[2]
    result["unit"] = unit
    result["created"] = show(unit) if unit else {}
    result.update(gone(runtime, cid, unit, f"{CGROUP}/system.slice/{unit}"))
    return result


def podman(runtime: Runtime, rootfs: str, name: str) -> dict:
    """podman with its systemd cgroup manager, driving the runtime (linked as "runc", the
    name podman passes --log to)."""
    links = f"/tmp/runtime-{name}"
    os.makedirs(links, exist_ok=True)
    if not os.path.exists(f"{links}/runc"):
        os.symlink(runtime.binary, f"{links}/runc")
    base = ["podman", "--cgroup-manager", "systemd", "--runtime", f"{links}/runc"]
    box = ["--network", "none", "--rootfs", rootfs]
    result: dict = {}
    echo = run([*base, "run", "--rm", *box, "echo", "hello"])
    result["echo"] = [echo.returncode, echo.stdout, echo.stderr]
    cname = f"pod-{name}"
    started = run([*base, "run", "-d", "--name", cname, "--memory", "64m", "--pids-limit", "20",
                   *box, "sleep", "1000"])  # fmt: skip
    result["run_d"] = [started.returncode, started.stderr]
    unit = f"libpod-{started.stdout.strip()}.scope"
    result["unit"] = show(unit)
    limits = run([*base, "exec", cname, "cat", "/sys/fs/cgroup/memory.max",
                  "/sys/fs/cgroup/pids.max"])  # fmt: skip
    result["exec"] = [limits.returncode, limits.stdout.split(), limits.stderr]
    stopped = run([*base, "stop", "-t", "1", cname])
    removed = run([*base, "rm", cname])
    result["stop_rm"] = [stopped.returncode, removed.returncode, removed.stderr]
    result["after"] = show(unit)
    return result


def main() -> None:
    binary, rootfs = sys.argv[1], sys.argv[2]
    name = os.path.basename(binary)
    shutil.rmtree("/tmp/bundles", ignore_errors=True)
    runtime = Runtime(binary, f"/run/sdtest-{name}")
    report = {"systemd": show("-.slice").get("LoadState", "")}
    for step in (limits, nested, default, podman):
        try:
            report[step.__name__] = step(runtime, rootfs, name)
        except Exception as exc:  # keep going: the test reports which step broke
            report[step.__name__] = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
