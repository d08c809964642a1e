"""Is a container's cgroup frozen? `state`, `start` and `kill` ask on every call, so the answer
comes from the record create keeps in state.json (Manager.freezer()): "1:<dir>" for a v1
freezer cgroup, "2:<dir>" for a cgroup2 one, "" where the host has neither; no driver is
loaded and /proc/self/mountinfo is not read."""

import time

from ocirun.cgroups.common import read, read_optional
from ocirun.errors import CgroupError


def is_frozen(freezer: str) -> bool:
    version, _, directory = freezer.partition(":")
    if version == "1":
        return _v1_frozen(directory)
    if version == "2":
        return read(directory, "cgroup.freeze").strip() == "1"
    return False


def _v1_frozen(directory: str) -> bool:
    """Frozen by us, not merely because an ancestor cgroup is frozen (freezer.self_freezing)."""
    while True:
        state = read(directory, "freezer.state").strip()
        if state == "THAWED":
            return False
        if state == "FROZEN":
            self_freezing = read_optional(directory, "freezer.self_freezing")
            return self_freezing is None or self_freezing.strip() == "1"
        if state != "FREEZING":
            raise CgroupError(f"{directory}/freezer.state: unknown state {state!r}")
        time.sleep(0.001)
