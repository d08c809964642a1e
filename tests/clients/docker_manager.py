"""A private dockerd (Debian's docker.io) with the runtime under test as its default runtime.

Its data root, exec root, pidfile, socket, config file and managed containerd live in a
directory of ours, its cgroups below a parent of ours, and it runs in a network namespace the
test makes: its bridge, addresses and iptables rules exist only there.
"""

import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

from client_managers import (
    RUNTIMES,
    Manager,
    Runtime,
    add_tar_file,
    kill_pid,
    pids_using,
    remove_cgroup,
    run_quietly,
    spawn_daemon,
    wait_for_daemon,
)

DOCKER = "/usr/bin/docker"  # docker.io's client, the daemon's own version
DOCKERD = "/usr/sbin/dockerd"
IMAGE = "ocirun-busybox:latest"
BRIDGE_IP = "10.232.0.1/24"
DEFAULT_RUNTIME = "ocirun"
# dockerd 20.10 makes these whatever its roots say (a trust key, the plugin directory): ours to
# remove again when they were not there before
HOST_LEFTOVERS = (Path("/etc/docker/key.json"), Path("/run/docker/plugins"), Path("/run/docker"))


def make_docker_archive(rootfs: Path, out: Path, name: str):
    """Write a `docker save` archive holding one image `name` whose single layer is rootfs."""
    layer_buf = io.BytesIO()
    with tarfile.open(fileobj=layer_buf, mode="w") as layer_tar:
        layer_tar.add(rootfs, arcname=".")
    layer = layer_buf.getvalue()
    diff_id = hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
    }
    config_blob = json.dumps(config).encode()
    config_name = hashlib.sha256(config_blob).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": [name], "Layers": [f"{diff_id}/layer.tar"]}]
    with tarfile.open(out, "w") as archive:
        add_tar_file(archive, f"{diff_id}/layer.tar", layer)
        add_tar_file(archive, config_name, config_blob)
        add_tar_file(archive, "manifest.json", json.dumps(manifest).encode())


class Dockerd:
    """A private dockerd in the network namespace netns, every runtime of RUNTIMES registered."""

    def __init__(self, home: Path, netns, cgroup_parent: str, options=()):
        self.options = list(options)  # more daemon options
        self.home = home
        self.netns = netns
        self.cgroup_parent = cgroup_parent
        self.socket = home / "docker.sock"
        self.daemon: subprocess.Popen | None = None
        self.leftovers = [path for path in HOST_LEFTOVERS if not path.exists()]

    def argv(self, *args: str) -> list[str]:
        return [
            "env",
            f"DOCKER_CONFIG={self.home}/client",
            DOCKER,
            f"--host=unix://{self.socket}",
            *args,
        ]

    def start(self):
        self.home.mkdir()
        config = self.home / "daemon.json"
        config.write_text("{}")  # not the host's /etc/docker/daemon.json
        runtimes = [
            f"--add-runtime={runtime.name}={runtime.path}"
            for runtime in RUNTIMES.values()
            if runtime.name != "runc"  # built in: runc from PATH
        ]
        log = self.home / "dockerd.log"
        argv = self.netns.argv(
            DOCKERD,
            f"--config-file={config}",
            f"--data-root={self.home}/data",
            f"--exec-root={self.home}/exec",
            f"--pidfile={self.home}/docker.pid",
            f"--host=unix://{self.socket}",
            f"--bip={BRIDGE_IP}",
            f"--cgroup-parent={self.cgroup_parent}",
            "--storage-driver=overlay2",
            *runtimes,
            f"--default-runtime={DEFAULT_RUNTIME}",
            *self.options,
        )
        self.daemon = spawn_daemon(argv, log)
        wait_for_daemon(self.daemon, log, "dockerd", self.answers, timeout=30)

    def answers(self) -> bool:
        """Whether the daemon answers on its socket (`docker version` needs the server)."""
        version = ["version", "--format={{.Server.Version}}"]
        return subprocess.run(self.argv(*version), capture_output=True).returncode == 0

    def load_image(self, rootfs: Path):
        archive = self.home / "image.tar"
        make_docker_archive(rootfs, archive, IMAGE)
        subprocess.run(self.argv("load", f"--input={archive}"), check=True, capture_output=True)

    def stop(self):
        """Remove every container, stop the daemon (and its containerd), kill what is left."""
        if self.daemon is None:
            return
        if self.daemon.poll() is None:
            containers = run_quietly(self.argv("ps", "--all", "--quiet")).split()
            if containers:
                run_quietly(self.argv("rm", "--force", "--volumes", *containers))
            self.daemon.terminate()
        try:
            self.daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()
        for pid in pids_using(self.home):
            kill_pid(pid)
        remove_cgroup(self.cgroup_parent.strip("/"))
        for path in self.leftovers:
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
            elif path.is_file():
                path.unlink()


class Docker(Manager):
    """The docker client running containers with one runtime; removes the containers it made."""

    def __init__(self, daemon: Dockerd, runtime: Runtime, prefix: str):
        self.daemon = daemon
        self.runtime = runtime
        self.prefix = prefix
        self.names: list[str] = []

    def argv(self, *args: str) -> list[str]:
        return self.daemon.argv(*args)

    def new_name(self) -> str:
        name = f"{self.prefix}-{len(self.names)}"
        self.names.append(name)
        return name

    def run_argv(self, *command: str, options=(), image: str = IMAGE) -> list[str]:
        return ["run", f"--runtime={self.runtime.name}", *options, image, *command]

    def run(self, *command: str, options=(), **kwargs):
        """Run command in a new container, attached, removing it once it exits."""
        return self(*self.run_argv(*command, options=("--rm", *options)), **kwargs)

    def start(self, *command: str, options=()) -> str:
        """Start command in a new detached container; return its name."""
        name = self.new_name()
        self(*self.run_argv(*command, options=("--detach", f"--name={name}", *options)))
        return name

    def inspect(self, name: str, template: str) -> str:
        return self("inspect", f"--format={template}", name).stdout.strip()

    def pid(self, name: str) -> int:
        return int(self.inspect(name, "{{.State.Pid}}"))

    def remove_all(self):
        if self.names:
            run_quietly(self.argv("rm", "--force", "--volumes", *self.names))


def which_missing() -> str:
    missing = [
        path for path in (DOCKER, DOCKERD, "/usr/bin/nsenter") if not os.access(path, os.X_OK)
    ]
    return f"not installed: {', '.join(missing)}" if missing else ""
