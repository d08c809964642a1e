"""containerd's CRI plugin driven as kubelet drives it: runtime.v1 over gRPC, a pod per test.

The containerd is private (root, state, socket, config, CNI configuration and IPAM data in a
directory of ours) and runs in a network namespace of its own, so that the CNI bridge, the pod
network and the streaming server's port never touch the host's interfaces or iptables. Pod
cgroups go below a cgroup root of this session's own, as kubelet's `--cgroup-root` would put
them. The pause image holds one small static C program compiled at test time.
"""

import hashlib
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import grpc
from client_managers import (
    CGROUP_ROOT,
    RUNTIMES,
    SHIM_SOCKETS,
    TIMEOUT,
    Runtime,
    kill_pid,
    make_oci_layout,
    pids_using,
    remove_cgroup,
    run,
    spawn_daemon,
    wait_for,
    wait_for_daemon,
)
from cri_api.v1 import api_pb2 as cri
from cri_api.v1.api_pb2_grpc import RuntimeServiceStub
from netns import NetworkNamespace

NAMESPACE = "k8s.io"  # CRI's containerd namespace
BUSYBOX = "localhost/ocirun-busybox:latest"
PAUSE = "localhost/ocirun-pause:latest"
BRIDGE = "ocirun-cri0"
SUBNET = "10.231.0.0/24"
STREAM_PORT = 10010  # in the private network namespace: no other server listens there

CONTAINERD_CONFIG = """\
version = 2
root = "{home}/root"
state = "{home}/state"

[grpc]
  address = "{home}/containerd.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "{home}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "{stream_port}"
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  # root lacks CAP_SYS_RESOURCE here: no oom_score_adj below containerd's own (pause asks -998)
  restrict_oom_score_adj = true

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{home}/cni"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
{runtimes}"""

RUNTIME_ENTRY = """
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}.options]
        BinaryName = "{path}"
        Root = "{home}/runtime-root/{name}"
        SystemdCgroup = false
"""

# The pod's pause process, as Kubernetes' own: sleep until TERM or INT, reap orphans (it is PID 1
# of a shared-PID pod).
PAUSE_C = r"""
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static void quit(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
int main(void) {
    struct sigaction stop = {.sa_handler = quit}, child = {.sa_handler = reap};
    sigaction(SIGINT, &stop, NULL);
    sigaction(SIGTERM, &stop, NULL);
    sigaction(SIGCHLD, &child, NULL);
    for (;;) pause();
}
"""

# What kubelet asks for in every container unless the pod says otherwise (procMount Default).
KUBELET_MASKED_PATHS = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
]
KUBELET_READONLY_PATHS = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
]
CNI_BIN = Path("/usr/lib/cni")
CNI_PLUGINS = ("bridge", "host-local", "loopback")


def cni_config(home: Path) -> dict:
    """A bridge of our own on a private subnet; no masquerading (nothing leaves the namespace)."""
    ipam = {
        "type": "host-local",
        "ranges": [[{"subnet": SUBNET}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": str(home / "cni-ipam"),
    }
    bridge = {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False, "ipam": ipam}
    return {"cniVersion": "0.4.0", "name": "ocirun-cri", "plugins": [bridge]}


def build_pause_rootfs(directory: Path) -> Path:
    """A rootfs holding only /pause, compiled here (binaries are never committed)."""
    source = directory / "pause.c"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(PAUSE_C)
    rootfs = directory / "pause-rootfs"
    rootfs.mkdir()
    run(["gcc", "-static", "-Os", "-o", str(rootfs / "pause"), str(source)], timeout=60)
    return rootfs


class CriContainerd:
    """A private containerd with the CRI plugin, in a network namespace of its own."""

    def __init__(self, home: Path, netns: NetworkNamespace, cgroup_root: str):
        self.home = home
        self.netns = netns
        self.cgroup_root = cgroup_root  # kubelet's --cgroup-root: pods go below it
        self.socket = home / "containerd.sock"
        self.daemon: subprocess.Popen | None = None
        self.channel: grpc.Channel | None = None
        self.ids: set[str] = set()  # of every sandbox and container, to find their shim sockets

    def ctr(self, *args: str, **kwargs):
        return run(["ctr", f"--address={self.socket}", f"--namespace={NAMESPACE}", *args], **kwargs)

    def start(self):
        self.home.mkdir()
        (self.home / "cni").mkdir()
        (self.home / "cni" / "10-ocirun.conflist").write_text(json.dumps(cni_config(self.home)))
        runtimes = "".join(
            RUNTIME_ENTRY.format(name=runtime.name, path=runtime.path, home=self.home)
            for runtime in RUNTIMES.values()
        )
        config = self.home / "config.toml"
        config.write_text(
            CONTAINERD_CONFIG.format(
                home=self.home,
                pause=PAUSE,
                stream_port=STREAM_PORT,
                cni_bin=CNI_BIN,
                runtimes=runtimes,
            )
        )
        log = self.home / "containerd.log"
        self.daemon = spawn_daemon(self.netns.argv("containerd", f"--config={config}"), log)
        wait_for_daemon(self.daemon, log, "containerd", self.socket.exists)
        self.channel = grpc.insecure_channel(f"unix://{self.socket}")
        wait_for(self.ready, "the CRI runtime and network to be ready")

    def ready(self) -> bool:
        """Whether the CRI Status call reports both conditions kubelet waits for as true."""
        try:
            conditions = self.stub().Status(cri.StatusRequest(), timeout=TIMEOUT).status.conditions
        except grpc.RpcError:
            return False
        ready = {condition.type: condition.status for condition in conditions}
        return ready.get("RuntimeReady", False) and ready.get("NetworkReady", False)

    def import_images(self, busybox_rootfs: Path):
        pause_rootfs = build_pause_rootfs(self.home / "pause")
        for name, rootfs, config in (
            (BUSYBOX, busybox_rootfs, {"Cmd": ["sh"]}),
            (PAUSE, pause_rootfs, {"Entrypoint": ["/pause"]}),
        ):
            tar = self.home / (name.rsplit("/", 1)[1].replace(":", "-") + ".tar")
            make_oci_layout(rootfs, tar, name, config)
            self.ctr("images", "import", str(tar))

    def stub(self) -> RuntimeServiceStub:
        return RuntimeServiceStub(self.channel)

    def stop(self):
        """Remove every pod left, stop the daemon, then clear what shims and runtimes left."""
        if self.daemon is None:
            return
        if self.daemon.poll() is None:
            stub = self.stub()
            try:
                for pod in stub.ListPodSandbox(cri.ListPodSandboxRequest(), timeout=TIMEOUT).items:
                    remove_pod(stub, pod.id)
            except grpc.RpcError:
                pass
            self.daemon.terminate()
        try:
            self.daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()
        if self.channel is not None:
            self.channel.close()
        for pid in pids_using(self.home):
            kill_pid(pid)
        for cid in self.ids:
            key = os.path.join(str(self.socket), NAMESPACE, cid)
            (SHIM_SOCKETS / hashlib.sha256(key.encode()).hexdigest()).unlink(missing_ok=True)
        remove_cgroup(self.cgroup_root)


def remove_pod(stub: RuntimeServiceStub, pod_id: str):
    """Stop and remove a pod sandbox and its containers, as kubelet does; ignore errors."""
    for call, request in (
        (stub.StopPodSandbox, cri.StopPodSandboxRequest(pod_sandbox_id=pod_id)),
        (stub.RemovePodSandbox, cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id)),
    ):
        try:
            call(request, timeout=TIMEOUT * 2)
        except grpc.RpcError:
            pass


class Kubelet:
    """What kubelet says to the CRI for one test: pods with one runtime handler, then removal."""

    def __init__(self, containerd: CriContainerd, runtime: Runtime, prefix: str):
        self.containerd = containerd
        self.runtime = runtime
        self.prefix = prefix
        self.stub = containerd.stub()
        self.pods: list[str] = []
        self.sandbox_configs: dict[str, cri.PodSandboxConfig] = {}

    def call(self, name: str, request, timeout: float = TIMEOUT):
        return getattr(self.stub, name)(request, timeout=timeout)

    def pod_config(self, *, network: str = "pod", pid: str = "container") -> cri.PodSandboxConfig:
        """A sandbox config as kubelet writes it for a burstable pod (cgroupfs driver)."""
        uid = str(uuid.uuid4())
        name = f"{self.prefix}-{len(self.pods)}"
        modes = {"pod": cri.POD, "container": cri.CONTAINER, "node": cri.NODE}
        namespaces = cri.NamespaceOption(network=modes[network], pid=modes[pid], ipc=cri.POD)
        log_directory = self.containerd.home / "pods" / f"default_{name}_{uid}"
        return cri.PodSandboxConfig(
            metadata=cri.PodSandboxMetadata(name=name, uid=uid, namespace="default", attempt=0),
            hostname="" if network == "node" else name,  # a hostNetwork pod has the node's
            log_directory=str(log_directory),
            labels={"io.kubernetes.pod.name": name},
            linux=cri.LinuxPodSandboxConfig(
                cgroup_parent=self.pod_cgroup(uid),
                security_context=cri.LinuxSandboxSecurityContext(namespace_options=namespaces),
            ),
        )

    def pod_cgroup(self, uid: str) -> str:
        return f"/{self.containerd.cgroup_root}/kubepods/burstable/pod{uid}"

    def run_pod(self, config: cri.PodSandboxConfig | None = None, **options) -> str:
        """RunPodSandbox with this runtime's handler; the sandbox's id."""
        config = config or self.pod_config(**options)
        Path(config.log_directory).mkdir(parents=True, exist_ok=True)
        for hierarchy in cgroup_hierarchies():  # kubelet makes the pod's cgroup before the pod
            (hierarchy / config.linux.cgroup_parent.lstrip("/")).mkdir(parents=True, exist_ok=True)
        request = cri.RunPodSandboxRequest(config=config, runtime_handler=self.runtime.name)
        pod_id = self.call("RunPodSandbox", request, timeout=TIMEOUT * 3).pod_sandbox_id
        self.pods.append(pod_id)
        self.containerd.ids.add(pod_id)
        self.sandbox_configs[pod_id] = config
        return pod_id

    def container_config(
        self,
        name: str,
        *command: str,
        security: cri.LinuxContainerSecurityContext | None = None,
        resources: cri.LinuxContainerResources | None = None,
        **fields,
    ) -> cri.ContainerConfig:
        """A container config as kubelet writes it: its log file, masked and read-only paths."""
        context = cri.LinuxContainerSecurityContext(
            masked_paths=KUBELET_MASKED_PATHS, readonly_paths=KUBELET_READONLY_PATHS
        )
        if security is not None:
            context.MergeFrom(security)
        return cri.ContainerConfig(
            metadata=cri.ContainerMetadata(name=name, attempt=0),
            image=cri.ImageSpec(image=BUSYBOX),
            command=list(command),
            log_path=f"{name}/0.log",
            linux=cri.LinuxContainerConfig(security_context=context, resources=resources),
            **fields,
        )

    def create_container(self, pod_id: str, config: cri.ContainerConfig) -> str:
        """CreateContainer; the container's namespace modes are the pod's, as kubelet sets them."""
        sandbox = self.sandbox_configs[pod_id]
        namespaces = sandbox.linux.security_context.namespace_options
        config.linux.security_context.namespace_options.CopyFrom(namespaces)
        request = cri.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=config, sandbox_config=sandbox
        )
        cid = self.call("CreateContainer", request, timeout=TIMEOUT * 2).container_id
        self.containerd.ids.add(cid)
        return cid

    def start_container(self, pod_id: str, name: str, *command: str, **options) -> str:
        """CreateContainer then StartContainer: the container's id."""
        cid = self.create_container(pod_id, self.container_config(name, *command, **options))
        self.call("StartContainer", cri.StartContainerRequest(container_id=cid))
        return cid

    def exec_sync(self, cid: str, *command: str, timeout: int = TIMEOUT) -> cri.ExecSyncResponse:
        request = cri.ExecSyncRequest(container_id=cid, cmd=list(command), timeout=timeout)
        return self.call("ExecSync", request, timeout=timeout + 5)

    def output(self, cid: str, *command: str) -> str:
        """stdout of a command run by ExecSync, which must succeed."""
        response = self.exec_sync(cid, *command)
        assert response.exit_code == 0, (response.exit_code, response.stderr)
        return response.stdout.decode()

    def status(self, cid: str) -> cri.ContainerStatus:
        request = cri.ContainerStatusRequest(container_id=cid)
        return self.call("ContainerStatus", request).status

    def info(self, cid: str) -> dict:
        """ContainerStatus's verbose info: the pid, and the spec containerd gave the runtime."""
        request = cri.ContainerStatusRequest(container_id=cid, verbose=True)
        return json.loads(self.call("ContainerStatus", request).info["info"])

    def pid(self, cid: str) -> int:
        return self.info(cid)["pid"]

    def sandbox_pid(self, pod_id: str) -> int:
        request = cri.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=True)
        return json.loads(self.call("PodSandboxStatus", request).info["info"])["pid"]

    def remove_all(self):
        for pod_id in self.pods:
            remove_pod(self.stub, pod_id)


def cgroup_hierarchies() -> list[Path]:
    """The cgroup v2 tree, or every v1 hierarchy (and the v2 one) of a hybrid host."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [CGROUP_ROOT]
    return [path for path in CGROUP_ROOT.iterdir() if (path / "cgroup.procs").exists()]


def runtime_root(containerd: CriContainerd, runtime: Runtime) -> Path:
    """Where the runtime keeps its state for CRI's containers (the handler's Root option)."""
    return containerd.home / "runtime-root" / runtime.name / NAMESPACE


def which_missing() -> str:
    """Why the CRI tests must be skipped: missing programs or CNI plugins; "" when none."""
    missing = [name for name in ("containerd", "nsenter", "ip", "gcc") if not shutil.which(name)]
    missing += [f"{CNI_BIN}/{name}" for name in CNI_PLUGINS if not (CNI_BIN / name).exists()]
    return f"not installed: {', '.join(missing)}" if missing else ""
