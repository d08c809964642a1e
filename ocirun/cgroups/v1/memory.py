"""cgroup v1 memory controller (runc libcontainer/cgroups/fs/memory.go)."""

import errno
import os

from ocirun.cgroups.common import (
    key_values,
    parse_uint,
    read,
    read_optional,
    warn,
    write,
    write_errno,
    write_error,
)
from ocirun.cgroups.manager import OomNotifier
from ocirun.cgroups.stats import memory_entry
from ocirun.errors import CgroupError

LIMIT = "memory.limit_in_bytes"
MEMSW = "memory.memsw.limit_in_bytes"


def apply(directory: str, memory: dict) -> None:
    limit = memory.get("limit") or 0  # 0 is "not set", as in runc
    swap = memory.get("swap") or 0
    if limit == -1 and swap == 0 and read_optional(directory, MEMSW) is not None:
        swap = -1  # unlimited memory with swap unset: lift the memory+swap limit too
    _set_limits(directory, limit, swap)
    if reservation := memory.get("reservation"):
        write(directory, "memory.soft_limit_in_bytes", str(reservation))
    if memory.get("disableOOMKiller") is not None:
        write(directory, "memory.oom_control", "1" if memory["disableOOMKiller"] else "0")
    swappiness = memory.get("swappiness")
    if swappiness is not None and swappiness != -1:
        if not 0 <= swappiness <= 100:
            raise CgroupError(f"memory.swappiness: {swappiness} is outside 0-100")
        write(directory, "memory.swappiness", str(swappiness))
    if memory.get("useHierarchy") is not None:
        write(directory, "memory.use_hierarchy", "1" if memory["useHierarchy"] else "0")
    if memory.get("kernel") is not None or memory.get("kernelTCP") is not None:
        warn(
            "memory.kernel and memory.kernelTCP are ignored (deprecated by the kernel, as in runc)"
        )


def _set_limits(directory: str, limit: int, swap: int) -> None:
    """The kernel wants memsw >= limit at every moment, so the write order depends on
    whether the limits grow or shrink (runc setMemoryAndSwap)."""
    if limit and swap:
        current = parse_uint(read(directory, LIMIT))
        if swap == -1 or current < swap:
            _write_swap(directory, swap)
            _write_limit(directory, limit)
            return
    _write_limit(directory, limit)
    _write_swap(directory, swap)


def _write_limit(directory: str, limit: int) -> None:
    if not limit:
        return
    err = write_errno(directory, LIMIT, str(limit))
    if err == errno.EBUSY:  # below what the cgroup already uses
        usage = parse_uint(read(directory, "memory.usage_in_bytes"))
        peak = parse_uint(read(directory, "memory.max_usage_in_bytes"))
        raise CgroupError(
            f"{directory}/{LIMIT}: unable to set memory limit to {limit} "
            f"(current usage: {usage}, peak usage: {peak})"
        )
    if err:
        raise write_error(directory, LIMIT, str(limit), err)


def _write_swap(directory: str, swap: int) -> None:
    if swap:
        write(directory, MEMSW, str(swap))


def stats(directory: str, out: dict) -> None:
    raw = read_optional(directory, "memory.stat")
    if raw is None:
        return
    values = key_values(raw)
    out.clear()  # refilled in runc's field order
    if values.get("cache"):
        out["cache"] = values["cache"]
    out["usage"] = _entry(directory, "memory", optional=False)
    out["swap"] = _entry(directory, "memory.memsw", optional=True)
    out["kernel"] = _entry(directory, "memory.kmem", optional=True)
    out["kernelTCP"] = _entry(directory, "memory.kmem.tcp", optional=True)
    out["raw"] = values


def _entry(directory: str, prefix: str, optional: bool) -> dict:
    usage = read_optional(directory, prefix + ".usage_in_bytes")
    if usage is None:
        if optional:  # swap and kernel accounting are optional in the kernel
            return memory_entry(0, 0, 0, 0)
        usage = read(directory, prefix + ".usage_in_bytes")
    return memory_entry(
        parse_uint(read(directory, prefix + ".limit_in_bytes")),
        parse_uint(usage),
        parse_uint(read(directory, prefix + ".max_usage_in_bytes")),
        parse_uint(read(directory, prefix + ".failcnt")),
    )


class OomEventfd(OomNotifier):
    """memory.oom_control registered with an eventfd through cgroup.event_control, as runc's
    notifyOnOOM. The kernel signals the eventfd on each OOM and when the cgroup is removed."""

    poll_events = 1  # POLLIN

    def __init__(self, directory: str):
        self._directory = directory
        self._eventfd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            self._control = os.open(f"{directory}/memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            os.close(self._eventfd)
            raise CgroupError(f"cannot open {directory}/memory.oom_control: {e.strerror}") from None
        try:
            write(directory, "cgroup.event_control", f"{self._eventfd} {self._control}")
        except CgroupError:
            self.close()
            raise

    def fileno(self) -> int:
        return self._eventfd

    def read(self) -> int | None:
        try:
            count = os.eventfd_read(self._eventfd)
        except BlockingIOError:
            count = 0
        if not os.path.exists(f"{self._directory}/cgroup.event_control"):
            return None  # that signal was the removal of the cgroup
        return count

    def close(self) -> None:
        os.close(self._eventfd)
        os.close(self._control)
