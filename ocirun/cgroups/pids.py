"""The pids controller: the same files in cgroup v1 and v2 (runc fs/pids.go, fs2/pids.go)."""

from ocirun.cgroups.common import UINT64_MAX, parse_uint, read, read_optional, write


def apply(directory: str, pids: dict) -> None:
    limit = pids.get("limit")
    if limit is not None:
        # -1 (any negative) is no limit; 0 is a real limit (the spec says so; runc 1.1 skipped it)
        write(directory, "pids.max", "max" if limit < 0 else str(limit))


def stats(directory: str, out: dict) -> None:
    current = read_optional(directory, "pids.current")
    if current is None:
        return
    limit = parse_uint(read(directory, "pids.max"))
    if int(current):
        out["current"] = int(current)
    if limit != UINT64_MAX:  # runc reports "no limit" as 0, left out
        out["limit"] = limit
