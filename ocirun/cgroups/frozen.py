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


def refuse_frozen(directories: list[tuple[str, str]]) -> None:
    """create's check, as runc's: a process forked into a frozen cgroup never runs, so create
    would wait for the container's init forever. directories: ("1" or "2", cgroup directory).
    Also refuses a cgroup frozen through a frozen ancestor (runc lets that one hang)."""
    for version, directory in directories:
        if version == "1":
            state = read(directory, "freezer.state").strip()
            if state == "THAWED":
                continue
            self_freezing = read_optional(directory, "freezer.self_freezing")
            why = f"{directory}/freezer.state is {state}"
            if self_freezing is not None and self_freezing.strip() == "0":
                why += ", frozen with an ancestor cgroup"
        elif (read_optional(directory, "cgroup.freeze") or "").strip() == "1":
            why = f"{directory}/cgroup.freeze is 1"  # (no such file before Linux 5.2: no freezer)
        elif "frozen 1" in (read_optional(directory, "cgroup.events") or "").split("\n"):
            why = f"{directory} is frozen with an ancestor cgroup (cgroup.events: frozen 1)"
        else:
            continue
        raise CgroupError(
            f"container's cgroup unexpectedly frozen: {why}; thaw it or choose another cgroupsPath"
        )
