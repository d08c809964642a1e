"""cgroup v1 hugetlb controller (runc libcontainer/cgroups/fs/hugetlb.go)."""

import errno

from ocirun.cgroups.common import (
    parse_uint,
    read,
    write,
    write_errno,
    write_error,
)
from ocirun.cgroups.hugepages import check_page_sizes, hugepage_sizes


def apply(directory: str, limits: list[dict]) -> None:
    check_page_sizes(limits)
    reservations = True
    for entry in limits:
        prefix, value = f"hugetlb.{entry['pageSize']}", str(entry["limit"])
        write(directory, prefix + ".limit_in_bytes", value)
        # limit the reservations too where the kernel accounts them (5.7+), as runc 1.2 does
        if reservations:
            err = write_errno(directory, prefix + ".rsvd.limit_in_bytes", value)
            if err == errno.ENOENT:
                reservations = False
            elif err:
                raise write_error(directory, prefix + ".rsvd.limit_in_bytes", value, err)


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
