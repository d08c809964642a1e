"""cgroup v2 cpuset controller (runc libcontainer/cgroups/fs2/cpuset.go)."""

from ocirun.cgroups.common import write


def apply(directory: str, cpu: dict) -> None:
    if cpus := cpu.get("cpus"):
        write(directory, "cpuset.cpus", cpus)
    if mems := cpu.get("mems"):
        write(directory, "cpuset.mems", mems)
