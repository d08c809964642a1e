"""Giving a container's cgroup2 cgroup to the container's root user, so that a container with
its own user and cgroup namespaces and a read-write cgroup mount can make sub-cgroups and move
its processes (nested containers, systemd inside). runc 1.1 does this only with its systemd
driver; the rule (the three conditions, the files in /sys/kernel/cgroup/delegate) is the same."""

import os

from ocirun.cgroups.manager import Manager
from ocirun.errors import CgroupError

# what /sys/kernel/cgroup/delegate lists on kernels that have no such file
DEFAULT_FILES = ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads")


def delegate(manager: Manager, config: dict) -> None:
    """chown the cgroup to the container's root user when the config asks for delegation."""
    owner = owner_of(config)
    if owner is not None:
        manager.delegate(*owner)


def owner_of(config: dict) -> tuple[int, int] | None:
    """The host uid and gid of the container's root user, if the cgroup is the container's to
    manage: a user namespace with mappings, a new cgroup namespace, a read-write cgroup mount."""
    linux = config.get("linux") or {}
    namespaces = {ns.get("type"): ns for ns in linux.get("namespaces") or []}
    if "user" not in namespaces or "cgroup" not in namespaces or namespaces["cgroup"].get("path"):
        return None
    if not any(
        m.get("type") in ("cgroup", "cgroup2") and "ro" not in (m.get("options") or [])
        for m in config.get("mounts") or []
    ):
        return None
    uid = _host_id(linux.get("uidMappings") or [])
    gid = _host_id(linux.get("gidMappings") or [])
    return None if uid is None else (uid, -1 if gid is None else gid)


def _host_id(mappings: list[dict]) -> int | None:
    for m in mappings:
        if m["containerID"] <= 0 < m["containerID"] + m["size"]:
            return m["hostID"] - m["containerID"]
    return None


def chown_cgroup(directory: str, uid: int, gid: int) -> None:
    """chown directory and the files the kernel says are safe to delegate."""
    try:
        with open("/sys/kernel/cgroup/delegate") as f:
            names = f.read().split()
    except OSError:
        names = list(DEFAULT_FILES)
    try:
        os.chown(directory, uid, gid)
        for name in names:
            try:
                os.chown(os.path.join(directory, name), uid, gid)
            except FileNotFoundError:  # a controller's file, where it is not enabled
                pass
    except OSError as e:
        raise CgroupError(f"cannot delegate {directory} to uid {uid}: {e.strerror}") from None
