"""Delete a container: kill a created one, undo everything create did, run poststop hooks."""

from ocirun.cli.options import opt

USAGE = "delete [--force] <container-id>"
OPTIONS = [
    opt("--force", "-f", kind=bool, help="kill a running container first; a missing one is fine")
]


def run(ctx, opts: dict, args: list[str]) -> int:
    from ocirun.cli import one_id
    from ocirun.container import delete

    delete(ctx.root, one_id(args), opts["force"])
    return 0
