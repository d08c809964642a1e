"""cgroup v2 memory controller (runc libcontainer/cgroups/fs2/memory.go)."""

import errno
import os

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
from ocirun.cgroups.manager import OomNotifier
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
    out.clear()  # refilled in runc's field order
    if values.get("file"):
        out["cache"] = values["file"]
    out["usage"] = memory_entry(limit, usage, peak, failcnt)
    out["swap"] = memory_entry(swap_limit, swap_usage + usage, swap_peak, 0)
    out["kernel"] = memory_entry(0, 0, 0, 0)
    out["kernelTCP"] = memory_entry(0, 0, 0, 0)
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


class OomEvents(OomNotifier):
    """memory.events: the kernel reports its changes as POLLPRI on an open descriptor of it,
    and its oom_kill counter says how many processes the OOM killer took (runc watches the
    same file, through inotify). The stream ends when cgroup.events says "populated 0"."""

    poll_events = 2  # POLLPRI: kernfs files are always readable, a change comes as PRI|ERR

    def __init__(self, directory: str):
        self._directory = directory
        try:
            self._fd = os.open(f"{directory}/memory.events", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise CgroupError(
                f"no OOM notifications: cannot open {directory}/memory.events: {e.strerror}"
            ) from None
        self._seen = self._oom_kills() or 0

    def _oom_kills(self) -> int | None:
        try:
            text = os.pread(self._fd, 4096, 0).decode()  # reading also re-arms the poll
        except OSError:
            return None
        return key_values(text).get("oom_kill", 0)

    def fileno(self) -> int:
        return self._fd

    def read(self) -> int | None:
        kills = self._oom_kills()
        events = read_optional(self._directory, "cgroup.events")
        if kills is None or events is None:
            return None
        new, self._seen = kills - self._seen, kills
        if not new and "populated 0" in events:
            return None
        return new

    def close(self) -> None:
        os.close(self._fd)
