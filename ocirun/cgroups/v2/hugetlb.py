"""cgroup v2 hugetlb controller (runc libcontainer/cgroups/fs2/hugetlb.go)."""

import errno

from ocirun.cgroups.common import (
    key_values,
    parse_uint,
    read,
    read_optional,
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
        write(directory, prefix + ".max", value)
        # limit the reservations too where the kernel accounts them (5.7+), as runc 1.2 does
        if reservations:
            err = write_errno(directory, prefix + ".rsvd.max", value)
            if err == errno.ENOENT:
                reservations = False
            elif err:
                raise write_error(directory, prefix + ".rsvd.max", value, err)


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
