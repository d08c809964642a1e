"""dockerd driving the runtime: a private daemon with ocirun registered by --add-runtime as its
default runtime, and runc (built in) to compare; every test runs `docker run --runtime=NAME`.
"""

import json
import os
import pwd
from pathlib import Path

import pytest
from client_managers import (
    LINGER,
    RUNC,
    RUNTIMES,
    TTY_AND_SIZE,
    cgroup_file,
    frozen,
    run,
    view_diff,
    wait_for,
)
from docker_manager import DEFAULT_RUNTIME, Docker, Dockerd, which_missing
from netns import NetworkNamespace, ask

SKIP_REASON = which_missing()
pytestmark = pytest.mark.skipif(bool(SKIP_REASON), reason=SKIP_REASON)

SERVE_HELLO = "while :; do echo hello | nc -l -p 80; done"


@pytest.fixture(scope="module")
def dockerd(workdir, rootfs):
    name = f"ocirun-docker-{os.getpid()}"
    netns = NetworkNamespace(name)
    daemon = Dockerd(workdir / "docker", netns, f"/{name}")
    try:
        netns.create()
        daemon.start()
        daemon.load_image(rootfs)
        yield daemon
    finally:
        daemon.stop()
        netns.delete()


def prefix(request, runtime) -> str:
    """Names for the test's containers: the test's name and the runtime's."""
    return f"{request.node.originalname.removeprefix('test_')}-{runtime.name}"


@pytest.fixture
def docker(dockerd, runtime, request):
    client = Docker(dockerd, runtime, prefix(request, runtime))
    yield client
    client.remove_all()


@pytest.fixture
def runc_docker(dockerd, runtime, request):
    client = Docker(dockerd, RUNC, prefix(request, runtime) + "-runc")
    yield client
    client.remove_all()


def namespace_of(pid: int | str, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def test_default_runtime(dockerd):
    client = Docker(dockerd, RUNTIMES[DEFAULT_RUNTIME], "default")
    info = client("info", "--format={{.DefaultRuntime}} {{json .Runtimes}}").stdout
    assert info.startswith(f"{DEFAULT_RUNTIME} ")
    assert all(f'"{name}"' in info for name in RUNTIMES)
    try:
        name = client.new_name()
        client("run", "--detach", f"--name={name}", "ocirun-busybox", "sleep", "1000")
        assert client.inspect(name, "{{.HostConfig.Runtime}}") == DEFAULT_RUNTIME
        cid = client.inspect(name, "{{.Id}}")
        # docker's root for every runtime: ocirun keeps the container's state there
        root = dockerd.home / "exec" / "runtime-runc" / "moby"
        runtime = RUNTIMES[DEFAULT_RUNTIME].path
        state = json.loads(run([str(runtime), f"--root={root}", "state", cid]).stdout)
        assert (state["status"], state["pid"]) == ("running", client.pid(name))
    finally:
        client.remove_all()


def test_same_view_as_runc(docker, runc_docker):
    view, reference = docker.probe(), runc_docker.probe()
    assert view == reference, view_diff(reference, view)


def test_output_and_exit_status(docker):
    proc = docker.run("sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "out\n", "err\n")


def test_stop_kills_after_timeout_137(docker):
    name = docker.start("sleep", "1000")  # pid 1 without a handler ignores SIGTERM
    docker("stop", "--time=1", name)
    assert docker.inspect(name, "{{.State.ExitCode}}") == "137"


def test_stop_with_init_143(docker):
    # docker-init is pid 1 and passes SIGTERM on to sleep, which it kills: 128 + 15
    name = docker.start("sleep", "1000", options=("--init",))
    assert docker("exec", name, "cat", "/proc/1/comm").stdout == "docker-init\n"
    docker("stop", "--time=10", name)
    assert docker.inspect(name, "{{.State.ExitCode}}") == "143"


def test_stop_trapped_term(docker):
    name = docker.start("sh", "-c", 'trap "exit 42" TERM; echo ready; while :; do sleep 0.1; done')
    wait_for(lambda: docker("logs", name).stdout == "ready\n", "the TERM trap")
    docker("stop", "--time=10", name)
    assert docker.inspect(name, "{{.State.ExitCode}}") == "42"


def test_tty(docker):
    argv = docker.run_argv("sh", "-c", TTY_AND_SIZE, options=("--rm", "--tty"))
    status, output = docker.in_terminal(*argv, rows=30, cols=100)
    assert status == 0, output
    assert output.split() == ["/dev/pts/0", "30", "100"]


def test_interactive(docker):
    proc = docker.run("sh", "-c", "cat; echo end", options=("--interactive",), input="a\nb\n")
    assert proc.stdout == "a\nb\nend\n"


def test_interactive_tty(docker):
    argv = docker.run_argv(
        "sh",
        "-c",
        f"tty; test -t 0 && echo stdin-tty; {LINGER}",
        options=("--rm", "--interactive", "--tty"),
    )
    status, output = docker.in_terminal(*argv)
    assert status == 0, output
    assert output.split() == ["/dev/pts/0", "stdin-tty"]


def test_pid_1_and_namespaces(docker):
    assert docker.run("sh", "-c", "echo $$").stdout == "1\n"
    name = docker.start("sleep", "1000")
    pid = docker.pid(name)
    assert pid != 1
    for kind in ("pid", "net", "mnt", "uts", "ipc"):
        inside = namespace_of(pid, kind)
        assert inside != namespace_of(os.getpid(), kind), kind
        # docker exec joins the container's namespaces
        assert docker("exec", name, "readlink", f"/proc/self/ns/{kind}").stdout == inside + "\n"


def test_hostname(docker):
    assert docker.run("hostname", options=("--hostname=myhost",)).stdout == "myhost\n"


def test_bind_volumes(docker, workdir):
    shared = workdir / f"bind-{docker.runtime.name}"
    shared.mkdir()
    docker.run("sh", "-c", "echo written > /data/file", options=(f"--volume={shared}:/data",))
    assert (shared / "file").read_text() == "written\n"
    proc = docker.run(
        "sh",
        "-c",
        "cat /data/file; touch /data/other",
        options=(f"--volume={shared}:/data:ro",),
        check=False,
    )
    assert proc.returncode != 0 and proc.stdout == "written\n"
    assert "Read-only file system" in proc.stderr


def test_named_volume(docker):
    volume = f"{docker.prefix}-volume"
    try:
        docker.run("sh", "-c", "echo kept > /data/file", options=(f"--volume={volume}:/data",))
        proc = docker.run("cat", "/data/file", options=(f"--volume={volume}:/data",))
        assert proc.stdout == "kept\n"
    finally:
        docker("volume", "rm", "--force", volume, check=False)


def test_read_only_with_tmpfs(docker):
    script = "touch /run/x && echo tmpfs-ok; grep ' /run ' /proc/mounts; touch /x"
    proc = docker.run("sh", "-c", script, options=("--read-only", "--tmpfs=/run"), check=False)
    assert proc.returncode != 0
    lines = proc.stdout.splitlines()
    assert lines[0] == "tmpfs-ok" and lines[1].split()[2] == "tmpfs"
    assert "Read-only file system" in proc.stderr


def test_port_publishing(docker, dockerd):
    name = docker.start("sh", "-c", SERVE_HELLO, options=("--publish=8080:80",))
    # through docker-proxy on the loopback, and through the DNAT rule and the veth pair
    wait_for(lambda: ask(dockerd.netns, "127.0.0.1", 8080) == "hello\n", "the published port")
    gateway = docker.inspect(name, "{{.NetworkSettings.Gateway}}")
    wait_for(lambda: ask(dockerd.netns, gateway, 8080) == "hello\n", "the bridge address")
    docker("rm", "--force", name)


def test_two_containers_reach_each_other(docker):
    server = docker.start("sh", "-c", SERVE_HELLO)
    address = docker.inspect(server, "{{.NetworkSettings.IPAddress}}")
    client = docker.start("sleep", "1000")

    def answer() -> str:
        return docker("exec", client, "nc", address, "80", check=False).stdout

    wait_for(lambda: answer() == "hello\n", "the other container's answer")


def test_memory_limit_oom(docker):
    options = ("--memory=32m", "--memory-swap=32m")
    name = docker.start("sh", "-c", "sleep 1; tail /dev/zero", options=options)
    limit = cgroup_file(docker.pid(name), "memory", "memory.limit_in_bytes", "memory.max")
    assert limit.read_text() == str(32 << 20) + "\n"
    wait_for(lambda: docker.inspect(name, "{{.State.Status}}") == "exited", "the OOM kill", 30)
    assert docker.inspect(name, "{{.State.OOMKilled}} {{.State.ExitCode}}") == "true 137"


def test_cpus_and_pids_limit(docker):
    name = docker.start("sleep", "1000", options=("--cpus=0.5", "--pids-limit=8"))
    pid = docker.pid(name)
    assert cgroup_file(pid, "cpu", "cpu.cfs_quota_us", "cpu.max").read_text().split()[0] == "50000"
    assert cgroup_file(pid, "pids", "pids.max", "pids.max").read_text() == "8\n"
    proc = docker(
        "exec", name, "sh", "-c", "for i in $(seq 10); do sleep 100 & done; wait", check=False
    )
    assert "can't fork" in proc.stderr or "Resource temporarily unavailable" in proc.stderr


def test_update(docker):
    name = docker.start("sleep", "1000")
    docker("update", "--memory=64m", "--memory-swap=64m", "--cpus=1.5", "--pids-limit=50", name)
    pid = docker.pid(name)
    limit = cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max")
    assert limit.read_text() == str(64 << 20) + "\n"
    assert cgroup_file(pid, "cpu", "cpu.cfs_quota_us", "cpu.max").read_text().split()[0] == "150000"
    assert cgroup_file(pid, "pids", "pids.max", "pids.max").read_text() == "50\n"


def test_pause_unpause(docker):
    name = docker.start("sleep", "1000")
    pid = docker.pid(name)
    docker("pause", name)
    assert docker.inspect(name, "{{.State.Status}}") == "paused"
    assert frozen(pid)
    docker("unpause", name)
    assert docker.inspect(name, "{{.State.Status}}") == "running"
    assert not frozen(pid)


def test_stats(docker):
    name = docker.start("sh", "-c", "sleep 1000 & sleep 1001")
    wait_for(lambda: len(docker("top", name).stdout.splitlines()) == 3, "two processes")
    stats = docker("stats", "--no-stream", "--format={{.PIDs}} {{.MemUsage}}", name).stdout
    pids, usage = stats.split(" ", 1)
    assert pids == "2", stats
    assert not usage.startswith("0B"), stats


def test_restart(docker):
    name = docker.start("sleep", "1000")
    first = docker.pid(name)
    docker("restart", "--time=1", name)
    assert docker.inspect(name, "{{.State.Status}} {{.RestartCount}}").startswith("running")
    assert docker.pid(name) not in (0, first)
    assert docker("exec", name, "cat", "/proc/1/cmdline").stdout == "sleep\x001000\x00"


def test_logs(docker):
    name = docker.start("sh", "-c", "echo to-out; echo to-err >&2")
    wait_for(lambda: docker.inspect(name, "{{.State.Status}}") == "exited", "the exit")
    proc = docker("logs", name)
    assert (proc.stdout, proc.stderr) == ("to-out\n", "to-err\n")


def test_capabilities(docker, runc_docker):
    command = ("grep", "^Cap", "/proc/self/status")
    assert docker.run(*command).stdout == runc_docker.run(*command).stdout
    options = ("--cap-drop=ALL", "--cap-add=NET_BIND_SERVICE")
    status = docker.run(*command, options=options).stdout
    assert "CapEff:\t0000000000000400" in status and "CapBnd:\t0000000000000400" in status
    proc = docker.run("chown", "1:1", "/tmp", options=("--cap-drop=CHOWN",), check=False)
    assert proc.returncode != 0 and "Operation not permitted" in proc.stderr


def test_user(docker):
    assert docker.run("id", options=("--user=1000:3000",)).stdout.startswith("uid=1000 gid=3000")


def test_seccomp(docker):
    assert docker.run("grep", "^Seccomp:", "/proc/self/status").stdout.split() == ["Seccomp:", "2"]
    # Docker's profile refuses unshare(2) to a container without CAP_SYS_ADMIN
    proc = docker.run("unshare", "--uts", "true", check=False)
    assert proc.returncode != 0 and "Operation not permitted" in proc.stderr
    unconfined = ("--security-opt=seccomp=unconfined",)
    proc = docker.run("grep", "^Seccomp:", "/proc/self/status", options=unconfined)
    assert proc.stdout.split() == ["Seccomp:", "0"]


def test_exec_exit_status_and_tty(docker):
    name = docker.start("sleep", "1000")
    proc = docker("exec", name, "sh", "-c", "echo out; exit 4", check=False)
    assert (proc.returncode, proc.stdout) == (4, "out\n")
    status, output = docker.in_terminal("exec", "--tty", name, "tty")
    assert status == 0 and output.startswith("/dev/pts/"), output


@pytest.fixture(scope="module")
def remapped_dockerd(workdir, rootfs):
    """A second daemon with --userns-remap=default (daemon-wide): root in its containers is
    the first subordinate uid of the user dockremap, which dockerd adds when it is missing."""
    name = f"ocirun-docker-userns-{os.getpid()}"
    netns = NetworkNamespace(name)
    made_user = not user_exists(REMAP_USER)
    daemon = Dockerd(workdir / "docker-userns", netns, f"/{name}", ["--userns-remap=default"])
    workdir.chmod(0o711)  # the remapped root must traverse it to its graph root
    try:
        netns.create()
        daemon.start()
        daemon.load_image(rootfs)
        yield daemon
    finally:
        daemon.stop()
        netns.delete()
        if made_user and user_exists(REMAP_USER):
            run(["userdel", REMAP_USER])  # also removes its group, subuid and subgid ranges


REMAP_USER = "dockremap"


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def subordinate_start(name: str) -> int:
    """The first subordinate uid of user name (/etc/subuid)."""
    for line in open("/etc/subuid"):
        user, start, _ = line.strip().split(":")
        if user == name:
            return int(start)
    raise AssertionError(f"no subordinate uids for {name}")


@pytest.fixture
def remapped_docker(remapped_dockerd, runtime, request):
    client = Docker(remapped_dockerd, runtime, prefix(request, runtime))
    yield client
    client.remove_all()


def test_userns_remap(remapped_docker, workdir):
    start = subordinate_start(REMAP_USER)
    volume = workdir / f"userns-{remapped_docker.runtime.name}"
    volume.mkdir(mode=0o777)
    volume.chmod(0o777)
    script = "id -u; cat /proc/self/uid_map; touch /data/written"
    proc = remapped_docker.run("sh", "-c", script, options=(f"--volume={volume}:/data",))
    uid, uid_map = proc.stdout.split("\n", 1)
    assert uid == "0"
    assert uid_map.split() == ["0", str(start), "65536"]
    # root in the container is the subordinate uid on the host: the file on the volume shows it
    assert (volume / "written").stat().st_uid == start
    name = remapped_docker.start("sleep", "1000")
    status = Path(f"/proc/{remapped_docker.pid(name)}/status").read_text()
    assert f"Uid:\t{start}\t{start}\t{start}\t{start}" in status
    assert remapped_docker("exec", name, "id", "-u").stdout == "0\n"


def test_missing_command(docker):
    # docker tells failures apart by the runtime's error message: 127 when it says "no such
    # file"; docker exec (20.10) gives 126 for any failure to start the process
    assert docker.run("/nonexistent", check=False).returncode == 127
    name = docker.start("sleep", "1000")
    assert docker("exec", name, "/nonexistent", check=False).returncode == 126


def test_unexecutable_command(docker):
    for program in ("/etc/passwd", "/tmp"):
        proc = docker.run(program, check=False)
        assert proc.returncode == 126, proc.stderr
        assert f'exec: "{program}": permission denied' in proc.stderr


CAP_SYS_RESOURCE = 24


def host_lacks_cap_sys_resource() -> bool:
    bounding = next(
        line.split()[1] for line in open("/proc/self/status") if line.startswith("CapBnd:")
    )
    return not int(bounding, 16) & (1 << CAP_SYS_RESOURCE)


@pytest.mark.skipif(not host_lacks_cap_sys_resource(), reason="root here can grant every cap")
def test_capability_the_host_lacks_fails_create(docker):
    proc = docker.run("true", options=("--cap-add=SYS_RESOURCE",), check=False)
    assert proc.returncode == 125, proc.stderr
    assert "OCI runtime create failed" in proc.stderr
