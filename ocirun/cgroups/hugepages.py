"""Huge page sizes, as the hugetlb controller names them in its files."""

import errno
import os

from ocirun.errors import CgroupError


def hugepage_sizes() -> list[str]:
    """The host's huge page sizes as cgroup file names spell them ("2MB", "1GB", "64KB")."""
    sizes = []
    try:
        names = os.listdir("/sys/kernel/mm/hugepages")
    except FileNotFoundError:
        return sizes
    for name in names:  # hugepages-2048kB; runc's getHugePageSizeFromFilenames
        kb = int(name.removeprefix("hugepages-").removesuffix("kB"))
        if kb >= 1 << 20:
            sizes.append(f"{kb >> 20}GB")
        elif kb >= 1 << 10:
            sizes.append(f"{kb >> 10}MB")
        else:
            sizes.append(f"{kb}KB")
    return sorted(sizes, key=page_size_bytes)


def page_size_bytes(size: str) -> int:
    """ "2MB" -> 2097152 (the spec's pageSize, base 1024)."""
    for unit, factor in (("KB", 1 << 10), ("MB", 1 << 20), ("GB", 1 << 30), ("TB", 1 << 40)):
        if size.endswith(unit) and size[:-2].isdigit():
            return int(size[:-2]) * factor
    raise CgroupError(f"hugepageLimits: invalid pageSize {size!r} (expected e.g. 2MB, 1GB, 64KB)")


def check_page_sizes(limits: list[dict]) -> None:
    available = hugepage_sizes()
    for entry in limits:
        page_size_bytes(entry["pageSize"])
        if entry["pageSize"] not in available:
            have = ", ".join(available) or "none"
            raise CgroupError(
                f"hugepageLimits: page size {entry['pageSize']} is not supported here (have {have})"
            )


def write_limits(directory: str, limits: list[dict], limit_file: str, rsvd_file: str) -> None:
    """hugetlb.<size>.<limit_file> for each entry, and the reservation limit too where the
    kernel accounts reservations (5.7+), as runc 1.2 does. v1 and v2 differ only in file names."""
    from ocirun.cgroups.common import write, write_errno, write_error

    check_page_sizes(limits)
    reservations = True
    for entry in limits:
        prefix, value = f"hugetlb.{entry['pageSize']}.", str(entry["limit"])
        write(directory, prefix + limit_file, value)
        if reservations:
            err = write_errno(directory, prefix + rsvd_file, value)
            if err == errno.ENOENT:
                reservations = False
            elif err:
                raise write_error(directory, prefix + rsvd_file, value, err)
