"""Create and start a container, wait for it, delete it, and exit with its status."""

from ocirun.cli.create import OPTIONS as CREATE_OPTIONS
from ocirun.cli.options import opt

USAGE = "run [options] <container-id>"
OPTIONS = CREATE_OPTIONS + [
    opt("--detach", "-d", kind=bool, help="do not wait for the container; leave it running"),
    opt("--keep", kind=bool, help="do not delete the container after it exits"),
]


def run(ctx, opts: dict, args: list[str]) -> int:
    from ocirun.cli import one_id
    from ocirun.cli.create import create_options
    from ocirun.container import run

    return run(ctx.root, one_id(args), create_options(opts, ctx), opts["detach"], opts["keep"])
