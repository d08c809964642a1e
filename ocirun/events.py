"""`events`: a container's statistics every interval and its OOM kills as they happen."""


def stream(container_id: str, cgroup, interval: float, emit) -> None:
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
                    emit({"type": "oom", "id": container_id})
            if due:
                next_stats += interval
                try:
                    emit({"type": "stats", "id": container_id, "data": cgroup.stats()})
                except CgroupError as exc:  # runc logs it and goes on
                    log.error(str(exc))
    finally:
        notifier.close()

