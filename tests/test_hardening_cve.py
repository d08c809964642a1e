"""Attacks from inside a container on the runtime, in the way runc's CVEs did them; each
test performs the attack and fails on a runtime without the defence.

The runtime here runs on a copy of the interpreter: should an attack get through, the copy
is what it reaches, never the host's python3.
"""

import hashlib
import os
import shutil
import sys

import pytest
from helpers import REPO, Runtime


@pytest.fixture
def copied_runtime(tmp_path):
    """ocirun on a private copy of the interpreter (and the copy's path)."""
    interpreter = tmp_path / "python3-copy"
    shutil.copy2(os.path.realpath(sys.executable), interpreter)
    launcher = tmp_path / "ocirun"
    launcher.write_text(f"#!{interpreter} -S\nimport sys\nsys.path[0] = {str(REPO)!r}\n"
                        "from ocirun.cli import entry\nentry()\n")  # fmt: skip
    launcher.chmod(0o755)
    runtime = Runtime(tmp_path / "state", binary=str(launcher))
    yield runtime, interpreter
    runtime.cleanup()


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


ATTACK = (
    "cat /proc/$T/exe > /dev/null 2>&1 && echo READ; "
    "(exec 3<>/proc/$T/exe) 2>/dev/null && echo OPENED; "
    "readlink /proc/$T/fd/0 > /dev/null 2>&1 && echo FD; "
    "cat /proc/$T/environ > /dev/null 2>&1 && echo ENVIRON; "
    "echo done"
)


def status_field(pid: int, name: str) -> list[str]:
    with open(f"/proc/{pid}/status") as f:
        return next(line.split()[1:] for line in f if line.startswith(name + ":"))


def effective_caps(pid: int) -> str:
    return status_field(pid, "CapEff")[0]


def test_an_init_with_the_containers_caps_cannot_be_reached_through_proc_exe(
    copied_runtime, make_bundle, cid, tmp_path
):  # fmt: skip
    """CVE-2019-5736: until execve the init is the host's interpreter. Held just before its
    execve, with the container's own capabilities (so they no longer shield it), by a
    seccomp agent that is slow to accept the listener, it must still be out of reach of a
    process of a container sharing its pid namespace (a pod): not readable, not writable, no
    fds, no environ."""
    import socket
    import subprocess
    import time

    ocirun, interpreter = copied_runtime
    before = digest(interpreter)
    agent_path = str(tmp_path / "agent.sock")
    agent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    agent.bind(agent_path)
    agent.listen(0)
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    filler.connect(agent_path)  # the backlog is full: `start` will wait in connect
    pod = make_bundle(["sleep", "300"])
    ocirun("run", "-d", "--bundle", pod.write(), f"{cid}-pod", check=True)
    pod_pid = ocirun.state(f"{cid}-pod")["pid"]
    bundle = make_bundle(["true"])
    for ns in bundle.config["linux"]["namespaces"]:
        if ns["type"] == "pid":
            ns["path"] = f"/proc/{pod_pid}/ns/pid"
    bundle.config["process"]["noNewPrivileges"] = True
    bundle.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": agent_path,
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}],
    }  # fmt: skip
    ocirun("create", "--bundle", bundle.write(), cid, check=True)
    init = ocirun.state(cid)["pid"]
    starting = subprocess.Popen([ocirun.binary, "--root", str(ocirun.root), "start", cid],
                                stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        own_caps = effective_caps(os.getpid())
        deadline = time.monotonic() + 20
        while effective_caps(init) == own_caps and time.monotonic() < deadline:
            time.sleep(0.01)  # until the init has taken the container's capabilities
        assert effective_caps(init) != own_caps
        assert os.readlink(f"/proc/{init}/exe") == str(interpreter)  # the target is there
        target = status_field(init, "NSpid")[-1]  # its pid in the pod's namespace
        result = ocirun("exec", "--env", f"T={target}", f"{cid}-pod", "sh", "-c", ATTACK)
        assert result.stdout.split() == ["done"], result
    finally:
        filler.close()
        agent.close()  # `start` fails to connect: the init is killed before its execve
        starting.wait(timeout=30)
    assert digest(interpreter) == before


FD_NUMBERS = range(3, 16)


@pytest.mark.parametrize("fd", FD_NUMBERS)
def test_a_cwd_through_proc_self_fd_never_lands_outside(ocirun, make_bundle, cid, fd):
    """CVE-2024-21626: cwd /proc/self/fd/N for any fd the init might hold. The program either
    does not run, or runs inside the container's root (getcwd works, / is the rootfs)."""
    bundle = make_bundle()
    bundle.config["process"]["cwd"] = f"/proc/self/fd/{fd}"
    bundle.config["process"]["args"] = ["sh", "-c", "pwd && test -x /bin/busybox && echo in"]
    result = ocirun("run", "--bundle", bundle.write(), cid)
    if result.returncode == 0:
        assert result.stdout.splitlines()[-1] == "in" and "(unreachable)" not in result.stdout
    else:
        assert "internal error" not in result.stderr


@pytest.mark.parametrize("fd", FD_NUMBERS)
def test_an_exec_cwd_through_proc_self_fd_never_lands_outside(ocirun, make_bundle, cid, fd):
    bundle = make_bundle(["sleep", "300"])
    ocirun("run", "-d", "--bundle", bundle.write(), cid, check=True)
    result = ocirun("exec", "--cwd", f"/proc/self/fd/{fd}", cid, "sh", "-c",
                    "pwd && test -x /bin/busybox && echo in")  # fmt: skip
    if result.returncode == 0:
        assert result.stdout.splitlines()[-1] == "in" and "(unreachable)" not in result.stdout
    else:
        assert "internal error" not in result.stderr


def test_the_init_holds_no_host_directory_while_it_waits(ocirun, make_bundle, cid):
    """While created, the init's fds: stdio, and nothing that is a directory of the host
    but the state directory it needs to open the exec fifo at start."""
    bundle = make_bundle()
    ocirun("create", "--bundle", bundle.write(), cid, check=True)
    init = ocirun.state(cid)["pid"]
    held = {}
    for name in os.listdir(f"/proc/{init}/fd"):
        held[int(name)] = os.readlink(f"/proc/{init}/fd/{name}")
    extra = {fd: target for fd, target in held.items() if fd > 2}
    assert list(extra.values()) == [str(ocirun.root / cid)], held


def test_a_host_directory_passed_as_fd_3_is_never_the_cwd(ocirun, make_bundle, cid, tmp_path):
    """The defence itself: a host directory the caller hands in (--preserve-fds) and a cwd
    naming it: the program must not start there (runc: possible breakout detected)."""
    secret = tmp_path / "host-dir"
    secret.mkdir()
    (secret / "host-secret").write_text("x")
    bundle = make_bundle(["sh", "-c", "ls; pwd"])
    bundle.config["process"]["cwd"] = "/proc/self/fd/3"
    directory = os.open(secret, os.O_RDONLY | os.O_DIRECTORY)
    try:
        result = ocirun("run", "--preserve-fds", "1", "--bundle", bundle.write(), cid,
                        preexec_fn=lambda: os.dup2(directory, 3), pass_fds=(3,))  # fmt: skip
    finally:
        os.close(directory)
    assert "host-secret" not in result.stdout
    assert result.returncode == 1 and "possible container breakout detected" in result.stderr


def test_masking_refuses_a_dev_null_swapped_for_a_symlink(ocirun, make_bundle, cid, rootfs):
    """CVE-2025-31133: /dev/null replaced (here by a createContainer hook, in the attack by a
    race through a shared mount) with a symlink to a file the container should not get
    over a masked path. The mask is bound only from a verified null device."""
    bundle = make_bundle(["cat", "/proc/version"])
    root = bundle.own_rootfs(rootfs)
    (open(os.path.join(root, "secret"), "w")).write("not for the container\n")
    swap = f"rm -f {root}/dev/null && ln -s /secret {root}/dev/null"
    bundle.config["hooks"] = {"createContainer": [{"path": "/bin/sh",
                                                   "args": ["sh", "-c", swap]}]}  # fmt: skip
    bundle.config["linux"]["maskedPaths"] = ["/proc/version"]
    result = ocirun("run", "--bundle", bundle.write(), cid)
    assert "not for the container" not in result.stdout
    assert result.returncode == 1 and "/dev/null is not the null device" in result.stderr


def test_the_console_is_never_bound_through_a_swapped_dev_console(ocirun, make_bundle, cid,
                                                                  rootfs, tmp_path):  # fmt: skip
    """CVE-2025-52565: /dev/console swapped for a symlink before the console is bound; the
    pty must not be bound over the symlink's target (a file the container reaches)."""
    from test_terminal import ConsoleSocket

    bundle = make_bundle(["sh"])
    root = bundle.own_rootfs(rootfs)
    open(os.path.join(root, "target"), "w").write("a plain file\n")
    swap = f"rm -f {root}/dev/console && ln -s /target {root}/dev/console"
    bundle.config["hooks"] = {"createContainer": [{"path": "/bin/sh",
                                                   "args": ["sh", "-c", swap]}]}  # fmt: skip
    bundle.config["process"]["terminal"] = True
    console = ConsoleSocket(tmp_path / "console.sock")
    result = ocirun("create", "--console-socket", console.path, "-b", bundle.write(), cid)
    assert result.returncode == 1 and "/dev/console is neither" in result.stderr, result
    assert cid not in ocirun.ids()


def test_a_sysctl_is_never_written_through_an_overmount(ocirun, make_bundle, cid, rootfs):
    """CVE-2025-52881: something mounted over the knob (here by a createContainer hook, in
    the attack through a race) would take the write. It goes to procfs or nowhere."""
    bundle = make_bundle(["true"])
    root = bundle.own_rootfs(rootfs)
    decoy = os.path.join(root, "decoy")
    open(decoy, "w").write("untouched\n")
    knob = f"{root}/proc/sys/net/ipv4/ip_forward"
    bundle.config["hooks"] = {"createContainer": [{"path": "/bin/sh", "args": [
        "sh", "-c", f"mount --bind {decoy} {knob}"]}]}  # fmt: skip
    bundle.config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    result = ocirun("run", "--bundle", bundle.write(), cid)
    assert open(decoy).read() == "untouched\n"
    assert result.returncode == 1 and "mounted over it" in result.stderr, result


def test_sysctls_and_oom_score_adj_still_reach_procfs(ocirun, make_bundle, cid):
    bundle = make_bundle()
    bundle.config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    bundle.config["process"]["oomScoreAdj"] = 123
    probe = "cat /proc/sys/net/ipv4/ip_forward /proc/self/oom_score_adj"
    bundle.config["process"]["args"] = ["sh", "-c", probe]
    result = ocirun("run", "--bundle", bundle.write(), cid)
    assert result.stdout.split() == ["1", "123"], result
