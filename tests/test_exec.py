"""`ocirun exec` with real containers: output, status, process settings, namespaces, cgroup."""

import fcntl
import json
import os
import time
from pathlib import Path

import pytest
from helpers import OCIRUN

NAMESPACES = ("ipc", "mnt", "net", "pid", "uts", "cgroup", "time", "user")
EXEC_FAILED = 255  # runc's exit status for an exec that fails (runc's bats suite checks it)


@pytest.fixture
def running(ocirun, make_bundle, cid):
    """A running container whose init sleeps; returns (id, init pid, bundle)."""
    bundle = make_bundle(["sleep", "1000"])
    ocirun("run", "--detach", "--bundle", bundle.write(), cid, check=True)
    return cid, ocirun.state(cid)["pid"], bundle


def ns_links(pid: int) -> dict[str, str]:
    return {ns: os.readlink(f"/proc/{pid}/ns/{ns}") for ns in NAMESPACES}


def test_exec_prints_output_and_returns_status(ocirun, running):
    cid, _, _ = running
    result = ocirun("exec", cid, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")


def test_exec_killed_by_signal_is_128_plus_n(ocirun, running):
    cid, _, _ = running
    assert ocirun("exec", cid, "sh", "-c", "kill -9 $$").returncode == 128 + 9


def test_exec_env_cwd_user(ocirun, running):
    cid, _, _ = running
    script = 'echo "$FOO $(pwd) $(id -u):$(id -g) $(id -G)"'
    result = ocirun("exec", "-e", "FOO=bar", "--cwd", "/tmp", "-u", "1000:1001", "-g", "7",
                    cid, "sh", "-c", script, check=True)  # fmt: skip
    assert result.stdout == "bar /tmp 1000:1001 1001 7\n"


def test_exec_defaults_come_from_the_config(ocirun, running):
    cid, _, bundle = running
    result = ocirun("exec", cid, "sh", "-c", "echo $PATH; pwd; id -u", check=True)
    path = next(e for e in bundle.config["process"]["env"] if e.startswith("PATH="))
    assert result.stdout.split() == [path[5:], bundle.config["process"]["cwd"], "0"]


def test_exec_joins_every_namespace_and_the_cgroup(ocirun, running, tmp_path):
    cid, init_pid, _ = running
    pid_file = tmp_path / "exec.pid"
    ocirun("exec", "--detach", "--pid-file", str(pid_file), cid, "sleep", "1000", check=True)
    pid = int(pid_file.read_text())
    assert ns_links(pid) == ns_links(init_pid)
    assert Path(f"/proc/{pid}/cgroup").read_text() == Path(f"/proc/{init_pid}/cgroup").read_text()
    assert os.readlink(f"/proc/{pid}/root") == os.readlink(f"/proc/{init_pid}/root")
    assert pid in ocirun_ps(ocirun, cid)
    # a process of the container's pid namespace: pid 1 there is the init
    result = ocirun("exec", cid, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '", check=True)
    assert result.stdout == "sleep 1000 "


def ocirun_ps(ocirun, cid: str) -> list[int]:
    return json.loads(ocirun("ps", "--format", "json", cid, check=True).stdout)


def test_exec_detach_returns_once_running_and_is_not_our_child(ocirun, running, tmp_path):
    cid, _, _ = running
    pid_file = tmp_path / "exec.pid"
    started = time.monotonic()
    result = ocirun("exec", "-d", "--pid-file", str(pid_file), cid, "sleep", "1000")
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""
    assert time.monotonic() - started < 5
    pid = int(pid_file.read_text())
    assert Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x001000\x00"
    ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert ppid != os.getpid()  # re-parented past ocirun to a subreaper or the host's init


def test_exec_process_file(ocirun, running, tmp_path):
    cid, _, _ = running
    process = {"args": ["sh", "-c", "echo $A; id -u; ulimit -n"], "cwd": "/",
               "env": ["A=from-file", "PATH=/bin"], "user": {"uid": 5, "gid": 5},
               "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 100}]}  # fmt: skip
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    result = ocirun("exec", "--process", str(path), cid, check=True)
    assert result.stdout.split() == ["from-file", "5", "100"]


def test_exec_process_file_is_validated(ocirun, running, tmp_path):
    cid, _, _ = running
    path = tmp_path / "process.json"
    path.write_text(json.dumps({"args": ["true"], "cwd": 5}))
    result = ocirun("exec", "--process", str(path), cid)
    assert result.returncode == EXEC_FAILED and "process.json" in result.stderr


def test_exec_capabilities_and_no_new_privs(ocirun, make_bundle, cid):
    bundle = make_bundle(["sleep", "1000"])
    bundle.config["process"]["noNewPrivileges"] = False
    ocirun("run", "--detach", "--bundle", bundle.write(), cid, check=True)
    script = "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status"
    plain = ocirun("exec", cid, "sh", "-c", script, check=True).stdout.split()
    added = ocirun("exec", "--cap", "CAP_SYS_ADMIN", "--no-new-privs", cid, "sh", "-c", script,
                   check=True).stdout.split()  # fmt: skip
    assert plain[3] == "0" and added[3] == "1"
    assert int(added[1], 16) == int(plain[1], 16) | (1 << 21)


def test_exec_missing_command(ocirun, running):
    cid, _, _ = running
    result = ocirun("exec", cid, "no-such-program")
    assert result.returncode == EXEC_FAILED
    assert 'exec: "no-such-program": executable file not found in $PATH' in result.stderr
    result = ocirun("exec", cid, "/no/such")
    assert result.returncode == EXEC_FAILED and "no such file or directory" in result.stderr
    assert ocirun("exec", cid, "true").returncode == 0


def test_exec_missing_command_logs_json(ocirun, running, tmp_path):
    cid, _, _ = running
    log = tmp_path / "log.json"
    result = ocirun("--log", str(log), "--log-format", "json", "exec", "-d", cid, "/no/such")
    assert result.returncode == EXEC_FAILED and result.stdout == ""
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "no such file" in entry["msg"]


def test_exec_into_stopped_container_fails(ocirun, make_bundle, cid):
    ocirun("run", "--keep", "--bundle", make_bundle(["true"]).write(), cid, check=True)
    result = ocirun("exec", cid, "true")
    assert result.returncode == EXEC_FAILED and "stopped" in result.stderr
    ocirun("delete", cid, check=True)


def test_exec_into_paused_container_fails(ocirun, running):
    cid, _, _ = running
    ocirun("pause", cid, check=True)
    result = ocirun("exec", cid, "true")
    ocirun("resume", cid, check=True)
    assert result.returncode == EXEC_FAILED and "paused" in result.stderr


def test_exec_into_missing_container_fails(ocirun):
    result = ocirun("exec", "no-such-container", "true")
    assert result.returncode == EXEC_FAILED and "does not exist" in result.stderr


def test_exec_fds_do_not_leak_unless_preserved(ocirun, running, tmp_path):
    cid, _, _ = running
    opened = os.open(tmp_path, os.O_RDONLY)
    extra = fcntl.fcntl(opened, fcntl.F_DUPFD, 20)  # inheritable, like containerd's socket
    os.close(opened)
    try:
        listing = "ls /proc/self/fd"
        plain = ocirun("exec", cid, "sh", "-c", listing, pass_fds=(extra,), check=True)
        kept = ocirun("exec", "--preserve-fds", str(extra - 2), cid, "sh", "-c", listing,
                      pass_fds=(extra,), check=True)  # fmt: skip
    finally:
        os.close(extra)
    assert str(extra) not in plain.stdout.split()
    assert str(extra) in kept.stdout.split()


def test_exec_not_dumpable_until_execve(ocirun, running):
    cid, _, _ = running
    # after execve the process is dumpable again (its /proc files belong to its own user)
    result = ocirun("exec", "-u", "1000", cid, "stat", "-c", "%u", "/proc/self/status")
    assert result.stdout == "1000\n"


def test_exec_forwards_signals(ocirun, running):
    import subprocess

    cid, _, _ = running
    script = 'trap "exit 42" TERM; echo ready; while :; do sleep 0.1; done'
    proc = subprocess.Popen([OCIRUN, "--root", str(ocirun.root), "exec", cid, "sh", "-c", script],
                            stdout=subprocess.PIPE)  # fmt: skip
    try:
        assert proc.stdout.readline() == b"ready\n"
        proc.terminate()
        assert proc.wait(timeout=10) == 42
    finally:
        proc.kill()
        proc.stdout.close()


def test_exec_home_from_the_containers_passwd(ocirun, running):
    cid, _, _ = running
    assert ocirun("exec", cid, "sh", "-c", "echo $HOME", check=True).stdout == "/root\n"
    assert ocirun("exec", "-u", "4242", cid, "sh", "-c", "echo $HOME").stdout == "/\n"
    assert ocirun("exec", "-e", "HOME=/x", cid, "sh", "-c", "echo $HOME").stdout == "/x\n"


def detached_exec_pid(ocirun, cid: str, pid_file: Path) -> int:
    ocirun("exec", "-d", "--pid-file", str(pid_file), cid, "sleep", "1000", check=True)
    return int(pid_file.read_text())


def test_exec_joins_a_user_namespace(ocirun, make_bundle, cid, tmp_path):
    bundle = make_bundle(["sleep", "1000"])
    linux = bundle.config["linux"]
    linux["namespaces"].append({"type": "user"})
    # root stays root on the host: the test's rootfs lies under a directory only root can enter
    linux["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
    ocirun("run", "--detach", "--bundle", bundle.write(), cid, check=True)
    pid = detached_exec_pid(ocirun, cid, tmp_path / "exec.pid")
    assert ns_links(pid) == ns_links(ocirun.state(cid)["pid"])
    uid_map = ocirun("exec", cid, "cat", "/proc/self/uid_map", check=True).stdout
    assert uid_map.split() == ["0", "0", "65536"]


def test_exec_joins_a_time_namespace(ocirun, make_bundle, cid, tmp_path):
    bundle = make_bundle(["sleep", "1000"])
    bundle.config["linux"]["namespaces"].append({"type": "time"})
    bundle.config["linux"]["timeOffsets"] = {"boottime": {"secs": 86400 * 365}}
    ocirun("run", "--detach", "--bundle", bundle.write(), cid, check=True)
    pid = detached_exec_pid(ocirun, cid, tmp_path / "exec.pid")
    assert ns_links(pid) == ns_links(ocirun.state(cid)["pid"])
    uptime = float(ocirun("exec", cid, "cut", "-d", " ", "-f1", "/proc/uptime").stdout)
    assert uptime > 86400 * 365


def test_exec_gets_the_containers_seccomp_filter(ocirun, make_bundle, cid):
    bundle = make_bundle(["sleep", "1000"])
    rule = {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
    bundle.config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}
    ocirun("run", "--detach", "--bundle", bundle.write(), cid, check=True)
    status = ocirun("exec", cid, "grep", "^Seccomp:", "/proc/self/status", check=True).stdout
    assert status.split() == ["Seccomp:", "2"]
    result = ocirun("exec", cid, "mkdir", "/tmp/denied")
    assert result.returncode == 1 and "Operation not permitted" in result.stderr


def test_exec_does_not_inherit_pythons_ignored_signals(ocirun, running):
    cid, _, _ = running
    ignored = ocirun("exec", cid, "grep", "^SigIgn:", "/proc/self/status", check=True).stdout
    mask = int(ignored.split()[1], 16)
    assert not mask & (1 << (13 - 1)) and not mask & (1 << (25 - 1))  # SIGPIPE, SIGXFSZ
    assert ocirun("exec", cid, "sh", "-c", "yes | head -1", check=True).stdout == "y\n"
