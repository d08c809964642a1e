"""Print a container's statistics (cpu, memory, pids, blkio, hugetlb) every interval, and
its OOM kills as they happen, one JSON object a line; --stats prints the statistics once."""

from ocirun.cli.options import opt

USAGE = "events [--stats] [--interval DURATION] <container-id>"
OPTIONS = [
    opt("--stats", kind=bool, help="print the statistics once and exit"),
    opt("--interval", default="5s", help="time between statistics, e.g. 5s, 500ms (default 5s)"),
]


def run(ctx, opts: dict, args: list[str]) -> int:
    from ocirun.cli import one_id
    from ocirun.cli.options import parse_duration
    from ocirun.errors import InvalidState, UsageError
    from ocirun.events import stream
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
        stream(container.id, cgroup, interval, _emit)
    except BrokenPipeError:  # the reader went away
        pass
    return 0


def _emit(event: dict) -> None:
    import os

    from ocirun import jsonio

    os.write(1, (jsonio.dumps(event) + "\n").encode())
