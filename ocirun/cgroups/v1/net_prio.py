"""cgroup v1 net_prio controller (runc libcontainer/cgroups/fs/net_prio.go)."""

from ocirun.cgroups.common import write


def apply(directory: str, network: dict) -> None:
    for entry in network.get("priorities") or []:
        write(directory, "net_prio.ifpriomap", f"{entry['name']} {entry['priority']}")
