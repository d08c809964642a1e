"""cgroup v2 cpu controller (runc libcontainer/cgroups/fs2/cpu.go)."""

import errno

from ocirun.cgroups.common import (
    key_values,
    read,
    read_optional,
    warn,
    write,
    write_errno,
    write_error,
)
from ocirun.cgroups.convert import cpu_shares_to_weight


def apply(directory: str, cpu: dict) -> None:
    if cpu.get("realtimeRuntime") is not None or cpu.get("realtimePeriod") is not None:
        warn("cpu.realtimeRuntime/realtimePeriod: cgroup v2 has no realtime limits, ignored")
    if shares := cpu.get("shares"):
        write(directory, "cpu.weight", str(cpu_shares_to_weight(shares)))
    burst, quota, period = cpu.get("burst"), cpu.get("quota"), cpu.get("period")
    retry_burst = False
    if burst is not None:
        # a larger burst can be refused until the new quota is in: then write it again after
        err = write_errno(directory, "cpu.max.burst", str(burst))
        if err == errno.EINVAL and quota:
            retry_burst = True
        elif err:
            raise write_error(directory, "cpu.max.burst", str(burst), err)
    if quota or period:
        if not quota or not period:
            # cpu.max holds both: keep the half that is not being changed
            old_quota, _, old_period = read(directory, "cpu.max").strip().partition(" ")
            quota = quota or (-1 if old_quota == "max" else int(old_quota))
            period = period or int(old_period)
        write(directory, "cpu.max", f"{'max' if quota < 0 else quota} {period}")
        if retry_burst:
            write(directory, "cpu.max.burst", str(burst))
    if (idle := cpu.get("idle")) is not None:
        write(directory, "cpu.idle", str(idle))


def stats(directory: str, out: dict) -> None:
    text = read_optional(directory, "cpu.stat")  # in every cgroup, with or without the controller
    if text is None:
        return
    values = key_values(text)
    usage = {"total": values.get("usage_usec", 0) * 1000}
    if not usage["total"]:
        del usage["total"]
    usage["kernel"] = values.get("system_usec", 0) * 1000
    usage["user"] = values.get("user_usec", 0) * 1000
    out["usage"] = usage
    throttling = {
        "periods": values.get("nr_periods", 0),
        "throttledPeriods": values.get("nr_throttled", 0),
        "throttledTime": values.get("throttled_usec", 0) * 1000,
    }
    out["throttling"] = {key: value for key, value in throttling.items() if value}
