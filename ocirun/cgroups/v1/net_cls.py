"""cgroup v1 net_cls controller (runc libcontainer/cgroups/fs/net_cls.go)."""

from ocirun.cgroups.common import write


def apply(directory: str, network: dict) -> None:
    if (class_id := network.get("classID")) is not None:
        write(directory, "net_cls.classid", str(class_id))
