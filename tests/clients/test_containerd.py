"""containerd driving the runtime: `ctr run --runc-binary RUNTIME` through the runc v2 shim."""

import json
from pathlib import Path

import pytest
from client_managers import (
    LINGER,
    TTY_AND_SIZE,
    cgroup_dir,
    cgroup_file,
    frozen,
    missing_tools,
    view_diff,
    wait_for,
)

SKIP_REASON = missing_tools("containerd", "ctr", "containerd-shim-runc-v2")
pytestmark = pytest.mark.skipif(bool(SKIP_REASON), reason=SKIP_REASON)

# Two processes: the container's init and a child of it.
TWO_PROCESSES = ("sh", "-c", "sleep 1000 & exec sleep 1001")


def ps_pids(ctr, cid: str) -> set[int]:
    """The pids `ctr task ps` lists (the runtime's `ps --format json`)."""
    return {int(line.split()[0]) for line in ctr("tasks", "ps", cid).stdout.splitlines()[1:]}


def wait_for_status(ctr, cid: str, status: str):
    wait_for(lambda: ctr.task(cid)[1] == status, f"task {cid} {status}")


def alive(pid: int) -> bool:
    """Whether process pid exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_echo(ctr):
    assert ctr.run("echo", "hello").stdout == "hello\n"


def test_exit_status(ctr):
    proc = ctr.run("sh", "-c", "exit 7", check=False)
    assert proc.returncode == 7, proc.stderr


def test_stdin(ctr):
    # ctr keeps the container's stdin open past the end of its own: read one line, not to EOF.
    proc = ctr.run("sh", "-c", 'read line; echo "got $line"', input="hello\n")
    assert proc.stdout == "got hello\n"


def test_tty(ctr):
    argv = ctr.run_argv("sh", "-c", TTY_AND_SIZE, options=("--rm", "--tty"))
    status, output = ctr.in_terminal(*argv, rows=30, cols=100)
    assert status == 0, output
    assert output.split() == ["/dev/pts/0", "30", "100"]


def test_rootfs(ctr, rootfs):
    # With --rootfs, root.path is absolute and process.env is absent: no PATH to search.
    proc = ctr.run("/bin/cat", "/etc/hostname", rootfs=rootfs)
    assert proc.stdout == "ocirun\n"


def test_default_seccomp_profile(ctr):
    proc = ctr.run("grep", "^Seccomp:", "/proc/self/status", options=("--seccomp",))
    assert proc.stdout.split() == ["Seccomp:", "2"]


def test_memory_limit(ctr):
    cid = ctr.start("sleep", "1000", options=("--memory-limit=67108864",))
    pid, _ = ctr.task(cid)
    limit = cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max")
    assert limit.read_text() == "67108864\n"


def test_same_view_as_runc(ctr, runc_ctr):
    view, reference = ctr.probe(), runc_ctr.probe()
    assert view == reference, view_diff(reference, view)


def test_exec(ctr):
    cid = ctr.start("sleep", "1000")
    script = "echo out; echo err >&2; exit 3"
    proc = ctr("tasks", "exec", "--exec-id=e1", cid, "sh", "-c", script, check=False)
    assert (proc.returncode, proc.stdout) == (3, "out\n"), proc.stderr
    assert "err" in proc.stderr


def test_exec_tty(ctr):
    cid = ctr.start("sleep", "1000")
    status, output = ctr.in_terminal(
        "tasks", "exec", "--tty", "--exec-id=e1", cid, "sh", "-c", f"tty; {LINGER}"
    )
    assert status == 0, output
    assert output.startswith("/dev/pts/")


def test_exec_missing_command_fails(ctr):
    cid = ctr.start("sleep", "1000")
    proc = ctr("tasks", "exec", "--exec-id=e1", cid, "/nonexistent", check=False)
    assert proc.returncode != 0
    assert "/nonexistent" in proc.stderr
    assert ctr("tasks", "exec", "--exec-id=e2", cid, "true").returncode == 0


def test_ps(ctr):
    cid = ctr.start(*TWO_PROCESSES)
    pid, _ = ctr.task(cid)
    wait_for(lambda: len(ps_pids(ctr, cid)) == 2, "two processes in ctr task ps")
    procs = cgroup_file(pid, "pids", "cgroup.procs", "cgroup.procs")
    assert ps_pids(ctr, cid) == {int(p) for p in procs.read_text().split()}
    assert pid in ps_pids(ctr, cid)


def test_metrics(ctr):
    cid = ctr.start("sleep", "1000")
    pid, _ = ctr.task(cid)
    # The shim reads the cgroup that the config named, /<namespace>/<id>: the task must be in it.
    expected = f"/{ctr.containerd.namespace}/{cid}"
    assert cgroup_dir(pid, "memory").as_posix().endswith(expected)
    metrics = json.loads(ctr("tasks", "metrics", "--format=json", cid).stdout)
    assert metrics["pids"]["current"] == 1
    assert metrics["cpu"]["usage"]["total"] > 0


def test_pause_resume(ctr):
    cid = ctr.start("sleep", "1000")
    pid, _ = ctr.task(cid)
    ctr("tasks", "pause", cid)
    assert ctr.task(cid)[1] == "PAUSED"
    assert frozen(pid)
    ctr("tasks", "resume", cid)
    assert ctr.task(cid)[1] == "RUNNING"
    assert not frozen(pid)


def test_kill(ctr):
    cid = ctr.new_id()
    script = 'trap "exit 42" TERM; echo ready; while :; do sleep 0.1; done'
    attached = ctr.spawn(*ctr.run_argv("sh", "-c", script, options=("--rm",), cid=cid))
    assert attached.stdout.readline() == "ready\n"
    ctr("tasks", "kill", cid)
    assert attached.wait(timeout=20) == 42


def test_kill_all(ctr):
    cid = ctr.start(*TWO_PROCESSES)
    wait_for(lambda: len(ps_pids(ctr, cid)) == 2, "two processes in ctr task ps")
    pids = ps_pids(ctr, cid)
    ctr("tasks", "kill", "--all", "--signal=SIGKILL", cid)
    wait_for_status(ctr, cid, "STOPPED")
    wait_for(lambda: not any(alive(pid) for pid in pids), "every process killed")


def test_delete(ctr):
    cid = ctr.start("sleep", "1000")
    pid, _ = ctr.task(cid)
    cgroup = cgroup_dir(pid, "memory")
    ctr("tasks", "kill", "--signal=SIGKILL", cid)
    wait_for_status(ctr, cid, "STOPPED")
    ctr("tasks", "delete", cid)
    assert ctr.task(cid)[1] == "ABSENT"
    assert not (ctr.containerd.home / "runtime-root" / ctr.containerd.namespace / cid).exists()
    assert not cgroup.exists()
    ctr("containers", "delete", cid)
