"""Resume every process of a paused container."""

USAGE = "resume <container-id>"
OPTIONS = []


def run(ctx, opts: dict, args: list[str]) -> int:
    from ocirun.cli import one_id
    from ocirun.errors import InvalidState
    from ocirun.state import PAUSED, locked

    container_id = one_id(args)
    lock, container = locked(ctx.root, container_id)
    with lock:
        status = container.status()
        if status != PAUSED:
            raise InvalidState(f"container not paused: {container_id} is {status}")
        container.cgroup().thaw()
    return 0
