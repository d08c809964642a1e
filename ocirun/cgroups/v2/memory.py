"""cgroup v2 memory controller (runc libcontainer/cgroups/fs2/memory.go)."""

import errno

from ocirun.cgroups.common import (
    UINT64_MAX,
    key_values,
    num,
    parse_uint,
    read,
    read_optional,
    warn,
    write,
    write_errno,
    write_error,
)
from ocirun.cgroups.convert import memory_swap_to_v2
from ocirun.cgroups.stats import memory_entry
from ocirun.errors import CgroupError


def apply(directory: str, memory: dict) -> None:
    limit = memory.get("limit") or 0  # 0 is "not set", as in runc
    swap = memory.get("swap") or 0
    reservation = memory.get("reservation") or 0
    if limit > 0 and memory.get("checkBeforeUpdate"):
        # v1 refuses a limit below the usage; v2 would OOM-kill instead. The spec asks to refuse.
        usage = parse_uint(read(directory, "memory.current"))
        if limit < usage:
            raise CgroupError(
                f"{directory}/memory.max: refusing memory limit {limit}, below the current "
                f"usage {usage} (checkBeforeUpdate)"
            )
    if limit or swap or reservation:
        swap_max = memory_swap_to_v2(swap, limit)
        value = num(swap_max) if swap_max else ("0" if swap > 0 else "")
        if value:  # "" would mean 0; leave it alone when unset
            err = write_errno(directory, "memory.swap.max", value)
            # no swap accounting in this kernel: nothing to lift or to disable
            if err and not (err == errno.ENOENT and value in ("max", "0")):
                raise write_error(directory, "memory.swap.max", value, err)
        if limit:
            write(directory, "memory.max", num(limit))
        if reservation:
            write(directory, "memory.low", num(reservation))
    ignored = [key for key in ("kernel", "kernelTCP") if memory.get(key) is not None]
    if memory.get("swappiness") not in (None, -1):
        ignored.append("swappiness")
    if memory.get("disableOOMKiller"):
        ignored.append("disableOOMKiller")
    if memory.get("useHierarchy") is False:
        ignored.append("useHierarchy")  # v2 is always hierarchical
    if ignored:
        warn(f"memory.{', memory.'.join(ignored)}: no cgroup v2 equivalent, ignored")


def stats(directory: str, out: dict) -> None:
    raw = read_optional(directory, "memory.stat")
    if raw is None:
        return
    values = key_values(raw)
    limit, usage, peak, failcnt = _numbers(directory, "memory")
    swap_limit, swap_usage, swap_peak, _ = _numbers(directory, "memory.swap")
    if swap_limit != UINT64_MAX:  # v1 reports memory+swap: keep that meaning (runc statMemory)
        swap_limit += limit
    if values.get("file"):
        out["cache"] = values["file"]
    out["usage"] = memory_entry(limit, usage, peak, failcnt)
    out["swap"] = memory_entry(swap_limit, swap_usage + usage, swap_peak, 0)
    out["raw"] = values


def _numbers(directory: str, prefix: str) -> tuple[int, int, int, int]:
    """limit, usage, peak and the count of hits on the limit (memory.events "max")."""
    current = read_optional(directory, prefix + ".current")
    if current is None:  # no swap accounting
        return 0, 0, 0, 0
    peak = read_optional(directory, prefix + ".peak")  # since Linux 5.19
    events = key_values(read_optional(directory, prefix + ".events") or "")
    return (
        parse_uint(read(directory, prefix + ".max")),
        parse_uint(current),
        parse_uint(peak) if peak else 0,
        events.get("max", 0),
    )
