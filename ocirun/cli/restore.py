"""Restore a container from a previous checkpoint (not supported: ocirun has no
checkpoint/restore)."""

from ocirun.cli.checkpoint import CRIU_OPTIONS
from ocirun.cli.options import opt

USAGE = "restore [command options] <container-id>"
OPTIONS = CRIU_OPTIONS + [
    opt("--console-socket", help="unix socket to send the pty master to"),
    opt("--bundle", "-b", help="path to the root of the bundle directory"),
    opt("--detach", "-d", kind=bool, help="detach from the container's process"),
    opt("--pid-file", help="file to write the process id to"),
    opt("--no-subreaper", kind=bool, help="disable the use of the subreaper"),
    opt("--no-pivot", kind=bool, help="do not use pivot root to jail the process"),
    opt("--lsm-profile", help="the LSM profile of the restored process"),
    opt("--lsm-mount-context", help="the LSM mount context of the restored container"),
]


def run(ctx, opts: dict, args: list[str]) -> int:
    from ocirun.cli import one_id
    from ocirun.errors import UsageError

    one_id(args)
    raise UsageError("restore is not supported: ocirun has no checkpoint/restore")
