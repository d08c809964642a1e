"""Start a created container: its init executes the program."""

USAGE = "start <container-id>"
OPTIONS = []


def run(ctx, opts: dict, args: list[str]) -> int:
    from ocirun.cli import one_id
    from ocirun.container import start

    start(ctx.root, one_id(args))
    return 0
