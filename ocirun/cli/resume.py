"""Resume every process of a paused container."""

USAGE = "resume <container-id>"
OPTIONS = []


def run(ctx, opts: dict, args: list[str]) -> int:
    from ocirun.cli import one_id
    from ocirun.container import resume

    resume(ctx.root, one_id(args))
    return 0
