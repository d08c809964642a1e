"""Restore a container from a previous checkpoint (not supported: ocirun has no
checkpoint/restore)."""

from ocirun.cli.options import opt

USAGE = "restore [command options] <container-id>"
OPTIONS = [
    opt("--console-socket", help="unix socket to send the pty master to"),
    opt("--image-path", help="path to criu image files for restoring"),
    opt("--work-path", help="path for saving work files and logs"),
    opt("--tcp-established", kind=bool, help="allow open tcp connections"),
    opt("--ext-unix-sk", kind=bool, help="allow external unix sockets"),
    opt("--shell-job", kind=bool, help="allow shell jobs"),
    opt("--file-locks", kind=bool, help="handle file locks, for safety"),
    opt("--manage-cgroups-mode", help="cgroups mode: soft, full or strict"),
    opt("--bundle", "-b", help="path to the root of the bundle directory"),
    opt("--detach", "-d", kind=bool, help="detach from the container's process"),
    opt("--pid-file", help="file to write the process id to"),
    opt("--no-subreaper", kind=bool, help="disable the use of the subreaper"),
    opt("--no-pivot", kind=bool, help="do not use pivot root to jail the process"),
    opt("--empty-ns", kind=list, help="create a namespace, but do not restore its properties"),
    opt("--auto-dedup", kind=bool, help="enable auto deduplication of memory images"),
    opt("--lazy-pages", kind=bool, help="use userfaultfd to lazily restore memory pages"),
    opt("--lsm-profile", help="the LSM profile of the restored process"),
    opt("--lsm-mount-context", help="the LSM mount context of the restored container"),
]


def run(ctx, opts: dict, args: list[str]) -> int:
    from ocirun.cli import one_id
    from ocirun.errors import UsageError

    one_id(args)
    raise UsageError("restore is not supported: ocirun has no checkpoint/restore")
