"""Suspend every process of a running container (the cgroup freezer)."""

USAGE = "pause <container-id>"
OPTIONS = []


def run(ctx, opts: dict, args: list[str]) -> int:
    from ocirun.cli import one_id
    from ocirun.errors import InvalidState
    from ocirun.state import CREATED, RUNNING, locked

    container_id = one_id(args)
    lock, container = locked(ctx.root, container_id)
    with lock:
        status = container.status()
        if status not in (RUNNING, CREATED):  # runc pauses created containers too
            raise InvalidState(f"container not running: {container_id} is {status}")
        container.cgroup().freeze()
    return 0
