"""cgroup v1 hugetlb controller (runc libcontainer/cgroups/fs/hugetlb.go)."""

from ocirun.cgroups.common import (
    parse_uint,
    read,
)
from ocirun.cgroups.hugepages import hugepage_sizes, write_limits


def apply(directory: str, limits: list[dict]) -> None:
    write_limits(directory, limits, "limit_in_bytes", "rsvd.limit_in_bytes")


def stats(directory: str, out: dict) -> None:
    for size in hugepage_sizes():
        prefix = f"hugetlb.{size}."
        entry = {
            "usage": parse_uint(read(directory, prefix + "usage_in_bytes")),
            "max": parse_uint(read(directory, prefix + "max_usage_in_bytes")),
        }
        entry = {key: value for key, value in entry.items() if value}
        entry["failcnt"] = parse_uint(read(directory, prefix + "failcnt"))
        out[size] = entry
