"""Print a container's statistics (cpu, memory, pids, blkio, hugetlb) every interval, and
its OOM kills as they happen, one JSON object a line; --stats prints the statistics once."""

from ocirun.cli.options import opt

USAGE = "events [--stats] [--interval DURATION] <container-id>"
OPTIONS = [
    opt("--stats", kind=bool, help="print the statistics once and exit"),
    opt("--interval", default="5s", help="time between statistics, e.g. 5s, 500ms (default 5s)"),
]

UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def run(ctx, opts: dict, args: list[str]) -> int:
    from ocirun.cli import one_id
    from ocirun.errors import InvalidState, UsageError
    from ocirun.state import STOPPED, Container

    container = Container.load(ctx.root, one_id(args))
    interval = parse_duration(opts["interval"])
    if interval <= 0:
        raise UsageError("events: duration interval must be greater than 0")
    if container.status() == STOPPED:
        raise InvalidState(f"container with id {container.id} is not running")
    cgroup = container.cgroup()
    if opts["stats"]:
        _emit({"type": "stats", "id": container.id, "data": cgroup.stats()})
        return 0
    try:
        _stream(container.id, cgroup, interval)
    except BrokenPipeError:  # the reader went away
        pass
    return 0


def _stream(container_id: str, cgroup, interval: float) -> None:
    """Statistics every interval, OOM kills as the kernel reports them, until the cgroup goes
    away (v1: it is removed; v2: no process is left in it), as runc's events does."""
    import gc
    import select
    import time

    from ocirun.errors import CgroupError
    from ocirun.log import log

    gc.enable()  # (off for the setup, see cli.entry) this loop runs until it is stopped
    notifier = cgroup.oom_notifier()
    try:
        poller = select.poll()
        poller.register(notifier.fileno(), notifier.poll_events)
        next_stats = time.monotonic() + interval
        while True:
            woken = poller.poll(max(0.0, next_stats - time.monotonic()) * 1000)
            due = time.monotonic() >= next_stats
            if woken or due:
                kills = notifier.read()
                if kills is None:
                    return
                for _ in range(kills):
                    _emit({"type": "oom", "id": container_id})
            if due:
                next_stats += interval
                try:
                    _emit({"type": "stats", "id": container_id, "data": cgroup.stats()})
                except CgroupError as exc:  # runc logs it and goes on
                    log.error(str(exc))
    finally:
        notifier.close()


def _emit(event: dict) -> None:
    import os

    from ocirun import jsonio

    os.write(1, (jsonio.dumps(event) + "\n").encode())


def parse_duration(text: str) -> float:
    """A Go duration ("5s", "1m30s", "250ms", "1.5h") in seconds, as runc's --interval takes."""
    from ocirun.errors import UsageError

    rest = text.removeprefix("+")
    sign = -1.0 if rest.startswith("-") else 1.0
    rest = rest.removeprefix("-")
    if rest == "0":
        return 0.0
    if not rest:
        raise UsageError(f"invalid duration {text!r} (e.g. 5s, 500ms, 1m30s)")
    total = 0.0
    while rest:
        digits = len(rest) - len(rest.lstrip("0123456789."))
        number, rest = rest[:digits], rest[digits:]
        letters = len(rest) - len(rest.lstrip("abcdefghijklmnopqrstuvwxyzµμ"))
        unit, rest = rest[:letters], rest[letters:]
        if number in ("", ".") or number.count(".") > 1 or unit not in UNITS:
            raise UsageError(f"invalid duration {text!r} (e.g. 5s, 500ms, 1m30s)")
        total += float(number) * UNITS[unit]
    return sign * total
