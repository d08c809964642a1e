"""The config's `unified` map: cgroup v2 files written as given (runc fs2 setUnified)."""

from ocirun.cgroups.common import write
from ocirun.errors import CgroupError


def controllers(unified: dict[str, str]) -> set[str]:
    """The controllers the keys belong to ("cgroup.*" files need none); checks the key form."""
    needed = set()
    for key in unified:
        controller, dot, _ = key.partition(".")
        if "/" in key or not dot:
            raise CgroupError(f"unified: {key!r} is not a CONTROLLER.PARAMETER file name")
        if controller != "cgroup":
            needed.add(controller)
    return needed


def apply(directory: str, unified: dict[str, str]) -> None:
    for key, value in unified.items():
        for line in value.split("\n"):  # one write per line, as runc (io.max takes one device each)
            if line:
                write(directory, key, line)
