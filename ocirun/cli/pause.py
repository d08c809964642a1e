"""Suspend every process of a running container (the cgroup freezer)."""

USAGE = "pause <container-id>"
OPTIONS = []


def run(ctx, opts: dict, args: list[str]) -> int:
    from ocirun.cli import one_id
    from ocirun.container import pause

    pause(ctx.root, one_id(args))
    return 0
