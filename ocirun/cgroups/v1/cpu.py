"""cgroup v1 cpu controller (runc libcontainer/cgroups/fs/cpu.go)."""

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
from ocirun.errors import CgroupError


def apply(directory: str, cpu: dict) -> None:
    if shares := cpu.get("shares"):
        write(directory, "cpu.shares", str(shares))
        # the kernel clamps out-of-range shares: read back and say so
        actual = parse_uint(read(directory, "cpu.shares"))
        if actual != shares:
            bound = "maximum" if shares > actual else "minimum"
            raise CgroupError(f"cpu.shares: the {bound} allowed cpu-shares is {actual}")
    _pair(
        directory, ("cpu.cfs_period_us", cpu.get("period")), ("cpu.cfs_quota_us", cpu.get("quota"))
    )
    if (burst := cpu.get("burst")) is not None:
        write(directory, "cpu.cfs_burst_us", str(burst))
    if (idle := cpu.get("idle")) is not None:
        write(directory, "cpu.idle", str(idle))
    _pair(
        directory,
        ("cpu.rt_period_us", cpu.get("realtimePeriod")),
        ("cpu.rt_runtime_us", cpu.get("realtimeRuntime")),
    )


def _pair(directory: str, first: tuple[str, int | None], second: tuple[str, int | None]) -> None:
    """Period and quota (or runtime) are checked against each other by the kernel: a new period
    can be refused (EINVAL) until the new quota is in; then write the period again (runc)."""
    (first_file, first_value), (second_file, second_value) = first, second
    retry = False
    if first_value:
        err = write_errno(directory, first_file, str(first_value))
        if err == errno.EINVAL and second_value:
            retry = True
        elif err:
            raise write_error(directory, first_file, str(first_value), err)
    if second_value:
        write(directory, second_file, str(second_value))
        if retry:
            write(directory, first_file, str(first_value))


def stats(directory: str, out: dict) -> None:
    text = read_optional(directory, "cpu.stat")
    if text is None:
        return
    values = key_values(text)
    throttling = {
        "periods": values.get("nr_periods", 0),
        "throttledPeriods": values.get("nr_throttled", 0),
        "throttledTime": values.get("throttled_time", 0),
    }
    out["throttling"] = {key: value for key, value in throttling.items() if value}
