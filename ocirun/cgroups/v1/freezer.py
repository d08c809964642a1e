"""cgroup v1 freezer controller (runc libcontainer/cgroups/fs/freezer.go)."""

import time

from ocirun.cgroups.common import read, write
from ocirun.errors import CgroupError


def freeze(directory: str) -> None:
    """Write FROZEN until freezer.state says FROZEN. A v1 cgroup can stay FREEZING while new
    processes keep appearing; runc retries 1000 times, thawing and sleeping now and then, and
    gives up thawed. Same numbers here."""
    for attempt in range(1000):
        if attempt % 50 == 49:
            write(directory, "freezer.state", "THAWED")
            time.sleep(0.01)
        write(directory, "freezer.state", "FROZEN")
        if attempt % 25 == 24:
            time.sleep(0.00001)
        state = read(directory, "freezer.state").strip()
        if state == "FROZEN":
            return
        if state != "FREEZING":
            raise CgroupError(f"{directory}/freezer.state: unexpected {state!r} after FROZEN")
    write(directory, "freezer.state", "THAWED")
    raise CgroupError(f"{directory}: unable to freeze (processes kept appearing)")


def thaw(directory: str) -> None:
    write(directory, "freezer.state", "THAWED")
