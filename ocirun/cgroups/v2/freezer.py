"""cgroup v2 freezer: cgroup.freeze, in every cgroup since Linux 5.2 (runc fs2/freezer.go)."""

from ocirun.cgroups.common import read, write
from ocirun.cgroups.tree import wait_for


def freeze(directory: str) -> None:
    write(directory, "cgroup.freeze", "1")
    wait_for(lambda: "frozen 1" in read(directory, "cgroup.events"), f"{directory} to freeze")


def thaw(directory: str) -> None:
    write(directory, "cgroup.freeze", "0")
