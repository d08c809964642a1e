"""cgroup v2 hugetlb controller (runc libcontainer/cgroups/fs2/hugetlb.go)."""

from ocirun.cgroups.common import (
    key_values,
    parse_uint,
    read,
    read_optional,
)
from ocirun.cgroups.hugepages import hugepage_sizes, write_limits


def apply(directory: str, limits: list[dict]) -> None:
    write_limits(directory, limits, "max", "rsvd.max")


def stats(directory: str, out: dict) -> None:
    for size in hugepage_sizes():
        # usage counts reservations where the kernel has them, as runc does
        current = read_optional(directory, f"hugetlb.{size}.rsvd.current")
        if current is None:
            current = read_optional(directory, f"hugetlb.{size}.current")
        if current is None:  # the controller is not enabled for this cgroup
            return
        events = key_values(read(directory, f"hugetlb.{size}.events"))
        entry = {"usage": parse_uint(current)} if parse_uint(current) else {}
        entry["failcnt"] = events.get("max", 0)
        out[size] = entry
