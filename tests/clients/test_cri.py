"""containerd's CRI plugin driving the runtime as Kubernetes does: RuntimeClass handler per pod.

A private containerd with the CRI plugin runs in a network namespace of its own; each test plays
kubelet over runtime.v1 gRPC with the runtime handler named after the runtime under test
(`ocirun`, or `runc` to compare), both `io.containerd.runc.v2` entries with a BinaryName.
"""

import json
import os
import re
from pathlib import Path

import pytest
from client_managers import (
    LINGER,
    PROBE,
    RUNC,
    cgroup_dir,
    cgroup_file,
    run,
    view_diff,
    wait_for,
)
from k8s_stream import STDOUT, Stream, exit_code
from netns import NetworkNamespace, ask

cri_manager = pytest.importorskip("cri_manager", reason="container-runtime-interface-api missing")
SKIP_REASON = cri_manager.which_missing()
pytestmark = pytest.mark.skipif(bool(SKIP_REASON), reason=SKIP_REASON)

from cri_manager import (  # noqa: E402 (after the skip: grpc and the CRI stubs are optional)
    SUBNET,
    CriContainerd,
    Kubelet,
    cri,
    runtime_root,
)
from google.protobuf.json_format import ParseDict  # noqa: E402

CNI_CACHE = Path("/var/lib/cni")
# Pid 1 of a container ignores SIGTERM unless it handles it: a shell that traps it does.
TRAP_TERM = 'trap "exit 42" TERM; echo ready; while :; do sleep 0.1; done'


@pytest.fixture(scope="module")
def cri_containerd(workdir, rootfs):
    name = f"ocirun-cri-{os.getpid()}"
    netns = NetworkNamespace(name)
    service = CriContainerd(workdir / "cri", netns, name)
    cni_cache_existed = CNI_CACHE.exists()
    try:
        netns.create()
        service.start()
        service.import_images(rootfs)
        yield service
    finally:
        service.stop()
        netns.delete()
        if not cni_cache_existed:  # libcni's result cache: containerd 1.6 cannot move it
            for directory in (CNI_CACHE / "results", CNI_CACHE):
                if directory.is_dir() and not any(directory.iterdir()):
                    directory.rmdir()


def prefix(request, runtime) -> str:
    """Names for the test's pods: the test's name and the runtime's."""
    return f"{request.node.originalname.removeprefix('test_')}-{runtime.name}"


@pytest.fixture
def kubelet(cri_containerd, runtime, request):
    client = Kubelet(cri_containerd, runtime, prefix(request, runtime))
    yield client
    client.remove_all()


@pytest.fixture
def runc_kubelet(cri_containerd, runtime, request):
    """Pods with the runc handler, to compare the runtime under test with."""
    client = Kubelet(cri_containerd, RUNC, prefix(request, runtime) + "-runc")
    yield client
    client.remove_all()


def mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as mountinfo:
        return [line.split()[4] for line in mountinfo]


def namespace_of(pid: int, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def wait_exited(kubelet, cid: str) -> cri.ContainerStatus:
    wait_for(lambda: kubelet.status(cid).state == cri.CONTAINER_EXITED, f"{cid} to exit")
    return kubelet.status(cid)


def test_pod_runs_under_handler(kubelet):
    pod = kubelet.run_pod()
    status = kubelet.call("PodSandboxStatus", cri.PodSandboxStatusRequest(pod_sandbox_id=pod))
    assert status.status.state == cri.SANDBOX_READY
    assert status.status.runtime_handler == kubelet.runtime.name
    request = cri.PodSandboxStatusRequest(pod_sandbox_id=pod, verbose=True)
    info = json.loads(kubelet.call("PodSandboxStatus", request).info["info"])
    assert info["runtimeHandler"] == kubelet.runtime.name
    ip = status.status.network.ip
    assert ip.startswith(SUBNET.rsplit(".", 1)[0] + "."), ip
    # The handler's BinaryName made the sandbox: its state directory is in that runtime's root.
    assert (runtime_root(kubelet.containerd, kubelet.runtime) / pod).is_dir()
    cid = kubelet.start_container(pod, "app", "sleep", "1000")
    # what docs/kubernetes.md tells users to look at on the node (crictl inspect, ocirun list)
    assert kubelet.info(cid)["runtimeOptions"]["binary_name"] == str(kubelet.runtime.path)
    root = runtime_root(kubelet.containerd, kubelet.runtime)
    listed = run([str(kubelet.runtime.path), f"--root={root}", "list", "--quiet"]).stdout
    assert set(listed.split()) == {pod, cid}
    assert f"inet {ip}/" in kubelet.output(cid, "ip", "-4", "addr", "show", "eth0")


# Security contexts a pod spec commonly asks for, as kubelet turns them into the CRI's.
SECURITY_CONTEXTS = {
    "default": None,
    "user-groups": {
        "run_as_user": {"value": 1000},
        "run_as_group": {"value": 2000},
        "supplemental_groups": [3000, 4000],
    },
    "caps-seccomp-nnp": {
        "capabilities": {
            "add_capabilities": ["SYS_PTRACE", "NET_ADMIN"],
            "drop_capabilities": ["CHOWN"],
        },
        "seccomp": {"profile_type": "RuntimeDefault"},
        "no_new_privs": True,
    },
    "unconfined": {"seccomp": {"profile_type": "Unconfined"}},
}


@pytest.mark.parametrize("context", SECURITY_CONTEXTS)
def test_same_view_as_runc(kubelet, runc_kubelet, context):
    fields = SECURITY_CONTEXTS[context]
    security = ParseDict(fields, cri.LinuxContainerSecurityContext()) if fields else None
    probe = PROBE + "id -G; cat /proc/sys/net/ipv4/ip_unprivileged_port_start\n"
    views = []
    for client in (kubelet, runc_kubelet):
        config = client.pod_config()
        config.linux.sysctls["net.ipv4.ip_unprivileged_port_start"] = "80"  # a pod sysctl
        cid = client.start_container(
            client.run_pod(config), "app", "sleep", "1000", security=security
        )
        views.append(client.output(cid, "sh", "-c", probe))
    view, reference = views
    assert view == reference, view_diff(reference, view)


def test_host_network(kubelet):
    pod = kubelet.run_pod(network="node")
    cid = kubelet.start_container(pod, "app", "sleep", "1000")
    # hostNetwork: the node's network namespace, here the one the test made for containerd
    node = f"net:[{kubelet.containerd.netns.path.stat().st_ino}]"
    assert namespace_of(kubelet.pid(cid), "net") == node
    inside = kubelet.output(cid, "ip", "-o", "link").splitlines()
    outside = run(["ip", "-n", kubelet.containerd.netns.name, "-o", "link"]).stdout.splitlines()
    assert [line.split()[1] for line in inside] == [line.split()[1] for line in outside]
    # and the node's UTS namespace, but a pid namespace of its own
    assert namespace_of(kubelet.pid(cid), "uts") == namespace_of(os.getpid(), "uts")
    assert namespace_of(kubelet.pid(cid), "pid") != namespace_of(os.getpid(), "pid")


def test_kubelet_cgroup_parent(kubelet):
    pod = kubelet.run_pod()
    parent = kubelet.sandbox_configs[pod].linux.cgroup_parent
    cid = kubelet.start_container(pod, "app", "sleep", "1000")
    for identifier, pid in ((pod, kubelet.sandbox_pid(pod)), (cid, kubelet.pid(cid))):
        for controller in ("memory", "pids", "cpu"):
            assert cgroup_dir(pid, controller).as_posix().endswith(f"{parent}/{identifier}")
    cgroups = kubelet.output(cid, "cat", "/proc/self/cgroup")
    assert f":memory:{parent}/{cid}\n" in cgroups or f"::{parent}/{cid}\n" in cgroups


def test_containers_share_pod_network_and_ipc(kubelet):
    pod = kubelet.run_pod()
    server = kubelet.start_container(
        pod, "server", "sh", "-c", "while :; do echo hello | nc -l -p 8080; done"
    )
    client = kubelet.start_container(pod, "client", "sleep", "1000")
    sandbox, pids = kubelet.sandbox_pid(pod), (kubelet.pid(server), kubelet.pid(client))
    for kind in ("net", "ipc", "uts"):
        assert {namespace_of(pid, kind) for pid in pids} == {namespace_of(sandbox, kind)}
    assert namespace_of(pids[0], "pid") != namespace_of(pids[1], "pid")  # kubelet's default
    assert namespace_of(pids[0], "mnt") != namespace_of(pids[1], "mnt")

    def answer() -> str:
        return kubelet.exec_sync(client, "nc", "127.0.0.1", "8080").stdout.decode()

    wait_for(lambda: answer() == "hello\n", "the server's answer over the pod's loopback")
    # the pod's address, from the node through the CNI bridge
    status = kubelet.call("PodSandboxStatus", cri.PodSandboxStatusRequest(pod_sandbox_id=pod))
    address = status.status.network.ip
    wait_for(lambda: ask(kubelet.containerd.netns, address, 8080) == "hello\n", "the pod's IP")
    # the pod's /dev/shm is one, as its IPC namespace is
    kubelet.output(server, "sh", "-c", "echo shared > /dev/shm/note")
    assert kubelet.output(client, "cat", "/dev/shm/note") == "shared\n"


def test_shared_pid_pod(kubelet):
    pod = kubelet.run_pod(pid="pod")
    first = kubelet.start_container(pod, "first", "sleep", "1001")
    second = kubelet.start_container(pod, "second", "sleep", "1002")
    assert namespace_of(kubelet.pid(first), "pid") == namespace_of(kubelet.pid(second), "pid")
    assert kubelet.output(second, "cat", "/proc/1/cmdline") == "/pause\0"
    assert "sleep 1001" in kubelet.output(second, "ps", "-o", "args")


def test_exec_sync(kubelet):
    cid = kubelet.start_container(kubelet.run_pod(), "app", "sleep", "1000")
    response = kubelet.exec_sync(cid, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (response.exit_code, response.stdout, response.stderr) == (3, b"out\n", b"err\n")
    assert kubelet.output(cid, "cat", "/proc/1/cmdline") == "sleep\x001000\0"


def test_container_status(kubelet):
    pod = kubelet.run_pod()
    cid = kubelet.start_container(pod, "app", "sh", "-c", "sleep 1; exit 3")
    status = kubelet.status(cid)
    assert status.state == cri.CONTAINER_RUNNING and status.started_at > 0
    status = wait_exited(kubelet, cid)
    assert (status.exit_code, status.reason) == (3, "Error")
    assert status.finished_at > status.started_at
    done = kubelet.start_container(pod, "done", "true")
    assert (wait_exited(kubelet, done).exit_code, kubelet.status(done).reason) == (0, "Completed")


def test_container_stats(kubelet):
    pod = kubelet.run_pod()
    busy = kubelet.start_container(
        pod, "busy", "sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 1000"
    )
    idle = kubelet.start_container(pod, "idle", "sleep", "1000")

    def cpu_used():
        stats = kubelet.call("ContainerStats", cri.ContainerStatsRequest(container_id=busy))
        return stats.stats.cpu.usage_core_nano_seconds.value

    wait_for(lambda: cpu_used() > 10_000_000, "10 ms of CPU time in ContainerStats")
    stats = kubelet.call("ContainerStats", cri.ContainerStatsRequest(container_id=busy)).stats
    assert stats.attributes.id == busy
    assert stats.memory.working_set_bytes.value > 0
    listed = kubelet.call(
        "ListContainerStats",
        cri.ListContainerStatsRequest(filter=cri.ContainerStatsFilter(pod_sandbox_id=pod)),
    ).stats
    assert {entry.attributes.id for entry in listed} == {busy, idle}
    assert all(entry.memory.working_set_bytes.value > 0 for entry in listed)


def test_update_container_resources(kubelet):
    cid = kubelet.start_container(kubelet.run_pod(), "app", "sleep", "1000")
    pid = kubelet.pid(cid)
    resources = cri.LinuxContainerResources(
        memory_limit_in_bytes=64 << 20, cpu_period=100000, cpu_quota=50000, cpu_shares=512
    )
    request = cri.UpdateContainerResourcesRequest(container_id=cid, linux=resources)
    kubelet.call("UpdateContainerResources", request)
    limit = cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max")
    assert limit.read_text() == "67108864\n"
    quota = cgroup_file(pid, "cpu", "cpu.cfs_quota_us", "cpu.max")
    assert quota.read_text().split()[0] == "50000"
    assert kubelet.status(cid).resources.linux.memory_limit_in_bytes == 64 << 20


def test_log_file(kubelet):
    pod = kubelet.run_pod()
    cid = kubelet.start_container(pod, "app", "sh", "-c", "echo to-out; echo to-err >&2")
    wait_exited(kubelet, cid)
    log = Path(kubelet.status(cid).log_path)
    assert log.is_relative_to(kubelet.sandbox_configs[pod].log_directory)
    lines = log.read_text().splitlines()
    # CRI logging format: RFC 3339 time, stream, P(artial) or F(ull), the text
    pattern = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-][\d:]+) (stdout|stderr) F (.*)$")
    entries = sorted(pattern.match(line).group(2, 3) for line in lines)
    assert entries == [("stderr", "to-err"), ("stdout", "to-out")]


def test_readonly_root_and_run_as_user(kubelet):
    security = cri.LinuxContainerSecurityContext(
        readonly_rootfs=True,
        run_as_user=cri.Int64Value(value=1000),
        run_as_group=cri.Int64Value(value=3000),
    )
    cid = kubelet.start_container(kubelet.run_pod(), "app", "sleep", "1000", security=security)
    assert kubelet.output(cid, "id", "-u").strip() == "1000"
    assert kubelet.output(cid, "id", "-g").strip() == "3000"
    response = kubelet.exec_sync(cid, "touch", "/tmp/x")
    assert response.exit_code != 0
    assert b"Read-only file system" in response.stderr
    assert Path(f"/proc/{kubelet.pid(cid)}/status").read_text().count("\t1000\t") >= 1


def test_dropped_capabilities(kubelet):
    capabilities = cri.Capability(drop_capabilities=["ALL"], add_capabilities=["NET_BIND_SERVICE"])
    security = cri.LinuxContainerSecurityContext(capabilities=capabilities)
    cid = kubelet.start_container(kubelet.run_pod(), "app", "sleep", "1000", security=security)
    status = kubelet.output(cid, "grep", "^Cap", "/proc/self/status")
    assert "CapEff:\t0000000000000400" in status
    assert "CapBnd:\t0000000000000400" in status
    response = kubelet.exec_sync(cid, "chown", "1:1", "/tmp")
    assert response.exit_code != 0  # CAP_CHOWN is gone


def test_runtime_default_seccomp(kubelet):
    security = cri.LinuxContainerSecurityContext(
        seccomp=cri.SecurityProfile(profile_type=cri.SecurityProfile.RuntimeDefault)
    )
    cid = kubelet.start_container(kubelet.run_pod(), "app", "sleep", "1000", security=security)
    assert "Seccomp:\t2" in kubelet.output(cid, "grep", "^Seccomp:", "/proc/1/status")
    # containerd's default profile refuses unshare(2) to a container without CAP_SYS_ADMIN
    response = kubelet.exec_sync(cid, "unshare", "-u", "true")
    assert response.exit_code != 0 and b"Operation not permitted" in response.stderr


def test_masked_and_readonly_paths(kubelet):
    cid = kubelet.start_container(kubelet.run_pod(), "app", "sleep", "1000")
    assert kubelet.output(cid, "cat", "/proc/keys", "/proc/timer_list") == ""
    assert kubelet.output(cid, "ls", "/sys/firmware") == ""
    response = kubelet.exec_sync(cid, "sh", "-c", "echo 1 > /proc/sys/kernel/ns_last_pid")
    assert response.exit_code != 0 and b"Read-only file system" in response.stderr
    mounts = kubelet.output(cid, "cat", "/proc/self/mounts").splitlines()
    options = {line.split()[1]: line.split()[3].split(",") for line in mounts}
    for path in cri_manager.KUBELET_READONLY_PATHS:
        if Path(path).exists():  # this kernel may lack one (/proc/sysrq-trigger)
            assert "ro" in options[path], path


def test_stop_container_grace_period(kubelet):
    pod = kubelet.run_pod()
    trapping = kubelet.start_container(pod, "trapping", "sh", "-c", TRAP_TERM)
    log = kubelet.status(trapping).log_path
    wait_for(lambda: Path(log).exists() and "ready" in Path(log).read_text(), "the TERM trap")
    kubelet.call("StopContainer", cri.StopContainerRequest(container_id=trapping, timeout=10))
    assert kubelet.status(trapping).exit_code == 42
    # sleep as pid 1 ignores SIGTERM: killed once the grace period is over
    deaf = kubelet.start_container(pod, "deaf", "sleep", "1000")
    kubelet.call("StopContainer", cri.StopContainerRequest(container_id=deaf, timeout=1))
    assert kubelet.status(deaf).exit_code == 137


def test_remove_leaves_nothing(kubelet):
    pod = kubelet.run_pod()
    cid = kubelet.start_container(pod, "app", "sleep", "1000")
    pids = (kubelet.sandbox_pid(pod), kubelet.pid(cid))
    cgroups = [cgroup_dir(pid, "memory") for pid in pids]
    pod_cgroup = cgroups[0].parent
    request = cri.PodSandboxStatusRequest(pod_sandbox_id=pod, verbose=True)
    spec = json.loads(kubelet.call("PodSandboxStatus", request).info["info"])["runtimeSpec"]
    netns = next(ns["path"] for ns in spec["linux"]["namespaces"] if ns["type"] == "network")
    kubelet.call("StopContainer", cri.StopContainerRequest(container_id=cid, timeout=1))
    kubelet.call("RemoveContainer", cri.RemoveContainerRequest(container_id=cid))
    kubelet.call("StopPodSandbox", cri.StopPodSandboxRequest(pod_sandbox_id=pod))
    kubelet.call("RemovePodSandbox", cri.RemovePodSandboxRequest(pod_sandbox_id=pod))
    listed = kubelet.call("ListPodSandbox", cri.ListPodSandboxRequest()).items
    assert pod not in {item.id for item in listed}
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists()
    for cgroup in cgroups:
        assert not cgroup.exists()
    state = runtime_root(kubelet.containerd, kubelet.runtime)
    assert not (state / pod).exists() and not (state / cid).exists()
    assert not Path(netns).exists()
    assert not any(point.startswith(netns) for point in mount_points())
    assert pod_cgroup.exists()  # kubelet made the pod's cgroup: kubelet removes it


def test_exec_through_streaming_server(kubelet):
    cid = kubelet.start_container(kubelet.run_pod(), "app", "sleep", "1000")
    script = 'echo out; echo err >&2; read line; echo "got $line"; exit 5'
    request = cri.ExecRequest(
        container_id=cid, cmd=["sh", "-c", script], stdin=True, stdout=True, stderr=True
    )
    url = kubelet.call("Exec", request).url
    stream = Stream(kubelet.containerd.netns, url)
    try:
        stream.send(b"hello\n")
        stdout, stderr, status = stream.collect()
    finally:
        stream.close()
    assert (stdout, stderr, exit_code(status)) == (b"out\ngot hello\n", b"err\n", 5), status


def test_exec_tty_through_streaming_server(kubelet):
    cid = kubelet.start_container(kubelet.run_pod(), "app", "sleep", "1000")
    # as `kubectl exec -it`: with a tty but no stdin, containerd 1.6 loses the output now and
    # then (with runc as with ocirun); and a process on a terminal lingers before exiting
    command = ["sh", "-c", f"tty; {LINGER}"]
    request = cri.ExecRequest(container_id=cid, cmd=command, tty=True, stdin=True, stdout=True)
    stream = Stream(kubelet.containerd.netns, kubelet.call("Exec", request).url)
    try:
        stdout, _, status = stream.collect()
    finally:
        stream.close()
    assert stdout.startswith(b"/dev/pts/") and exit_code(status) == 0, (stdout, status)


def test_attach_through_streaming_server(kubelet):
    pod = kubelet.run_pod()
    script = 'echo ready; while read line; do echo "got $line"; done'
    cid = kubelet.start_container(pod, "app", "sh", "-c", script, stdin=True)
    log = Path(kubelet.status(cid).log_path)
    wait_for(lambda: log.exists() and "ready" in log.read_text(), "the container's first line")
    request = cri.AttachRequest(container_id=cid, stdin=True, stdout=True, stderr=True)
    stream = Stream(kubelet.containerd.netns, kubelet.call("Attach", request).url)
    try:
        stream.send(b"hello\n")
        assert b"got hello\n" in stream.read_until(STDOUT, b"got hello\n")
    finally:
        stream.close()
    # attached or not, the output goes to the log file as well
    wait_for(lambda: "got hello" in log.read_text(), "the answer in the log file")
