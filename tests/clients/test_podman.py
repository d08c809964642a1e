"""podman driving the runtime through conmon: `podman --runtime DIR/runc` (a link to it)."""

import pytest
from client_managers import (
    TTY_AND_SIZE,
    cgroup_dir,
    cgroup_file,
    frozen,
    missing_tools,
    pids_of,
    view_diff,
    wait_for,
)

SKIP_REASON = missing_tools("podman", "conmon")
pytestmark = pytest.mark.skipif(bool(SKIP_REASON), reason=SKIP_REASON)

# podman stops a container with SIGTERM, then SIGKILL once the timeout is over.
TRAP_TERM = 'trap "exit 42" TERM; echo ready; while :; do sleep 0.1; done'


def start_trapping_term(podman) -> str:
    name = podman.start("sh", "-c", TRAP_TERM)
    wait_for(lambda: podman("logs", name).stdout == "ready\n", "the TERM trap")
    return name


def test_echo(podman):
    assert podman.run("echo", "hello").stdout == "hello\n"


def test_exit_status(podman):
    proc = podman.run("sh", "-c", "exit 5", check=False)
    assert proc.returncode == 5, proc.stderr


def test_missing_command_exits_127(podman):
    # podman tells "not found" from the runtime's error message in its --log file.
    proc = podman.run("/nonexistent", check=False)
    assert proc.returncode == 127, proc.stderr


def test_stdin(podman):
    proc = podman.run("sh", "-c", "cat; echo end", options=("--interactive",), input="a\nb\n")
    assert proc.stdout == "a\nb\nend\n"


def test_tty(podman):
    argv = podman.run_argv("sh", "-c", TTY_AND_SIZE, options=("--rm", "--tty"))
    status, output = podman.in_terminal(*argv, rows=30, cols=100)
    assert status == 0, output
    assert output.split() == ["/dev/pts/0", "30", "100"]


def test_default_seccomp_profile(podman):
    proc = podman.run("grep", "^Seccomp:", "/proc/self/status", seccomp=True)
    assert proc.stdout.split() == ["Seccomp:", "2"]


def test_same_view_as_runc(podman, runc_podman):
    view, reference = podman.probe(), runc_podman.probe()
    assert view == reference, view_diff(reference, view)


def test_exec(podman):
    name = podman.start("sleep", "1000")
    proc = podman("exec", name, "sh", "-c", "echo out; echo err >&2; exit 4", check=False)
    assert (proc.returncode, proc.stdout) == (4, "out\n"), proc.stderr
    assert "err" in proc.stderr


def test_exec_stdin(podman):
    name = podman.start("sleep", "1000")
    proc = podman("exec", "--interactive", name, "cat", input="piped\n")
    assert proc.stdout == "piped\n"


def test_exec_tty(podman):
    name = podman.start("sleep", "1000")
    status, output = podman.in_terminal("exec", "--tty", name, "tty")
    assert status == 0, output
    assert output.startswith("/dev/pts/")


def test_exec_missing_command_exits_127(podman):
    name = podman.start("sleep", "1000")
    proc = podman("exec", name, "/nonexistent", check=False)
    assert proc.returncode == 127, proc.stderr
    assert podman("exec", name, "true").returncode == 0


def test_stop(podman):
    name = start_trapping_term(podman)
    podman("stop", "--time=5", name)
    assert podman("wait", name).stdout == "42\n"


def test_stop_kills_after_timeout(podman):
    name = podman.start("sleep", "1000")  # pid 1 ignores SIGTERM
    podman("stop", "--time=1", name)
    assert podman("wait", name).stdout == "137\n"


def test_pause_unpause(podman):
    name = podman.start("sleep", "1000")
    pid = int(podman.inspect(name, "{{.State.Pid}}"))
    podman("pause", name)
    assert podman.inspect(name, "{{.State.Status}}") == "paused"
    assert frozen(pid)
    podman("unpause", name)
    assert podman.inspect(name, "{{.State.Status}}") == "running"
    assert not frozen(pid)


def test_update_memory(podman):
    name = podman.start("sleep", "1000")
    pid = int(podman.inspect(name, "{{.State.Pid}}"))
    podman("update", "--memory=64m", name)
    limit = cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max")
    assert limit.read_text() == "67108864\n"


def test_rm_force(podman):
    name = podman.start("sleep", "1000")
    cid = podman.inspect(name, "{{.Id}}")
    cgroup = cgroup_dir(int(podman.inspect(name, "{{.State.Pid}}")), "memory")
    podman("rm", "--force", "--time=0", name)
    assert name not in podman("ps", "--all", "--format={{.Names}}").stdout.split()
    assert not cgroup.exists()
    wait_for(lambda: not pids_of("conmon", cid), "conmon to exit")
