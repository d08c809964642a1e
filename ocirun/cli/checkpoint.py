"""Checkpoint a running container (not supported: ocirun has no checkpoint/restore).

The flags are runc's, and are checked as runc checks them before it would call criu; then the
command fails, leaving the container as it was."""

from ocirun.cli.options import opt

USAGE = "checkpoint [command options] <container-id>"
# what checkpoint and restore share (the image, criu's work files, what criu may handle)
CRIU_OPTIONS = [
    opt("--image-path", help="path to criu image files"),
    opt("--work-path", help="path for saving work files and logs"),
    opt("--tcp-established", kind=bool, help="allow open tcp connections"),
    opt("--ext-unix-sk", kind=bool, help="allow external unix sockets"),
    opt("--shell-job", kind=bool, help="allow shell jobs"),
    opt("--file-locks", kind=bool, help="handle file locks, for safety"),
    opt("--manage-cgroups-mode", help="cgroups mode: soft, full or strict"),
    opt("--empty-ns", kind=list, help="create a namespace, but do not restore its properties"),
    opt("--auto-dedup", kind=bool, help="enable auto deduplication of memory images"),
    opt("--lazy-pages", kind=bool, help="use userfaultfd to lazily restore memory pages"),
]
OPTIONS = CRIU_OPTIONS + [
    opt("--parent-path", help="path for previous criu image files in pre-dump"),
    opt("--leave-running", kind=bool, help="leave the process running after checkpointing"),
    opt("--status-fd", kind=int, default=-1,
        help="criu writes \\0 to this fd when lazy-pages is ready"),
    opt("--page-server", help="ADDRESS:PORT of the page server"),
    opt("--pre-dump", kind=bool, help="dump the container's memory only, leave it running"),
]  # fmt: skip


def run(ctx, opts: dict, args: list[str]) -> int:
    import os

    from ocirun.cli import one_id
    from ocirun.errors import InvalidState, UsageError
    from ocirun.state import PAUSED, RUNNING, Container

    container = Container.load(ctx.root, one_id(args))
    status = container.status()
    if status not in (RUNNING, PAUSED):
        raise InvalidState(f"container {container.id} cannot be checkpointed: it is {status}")
    if parent := opts["parent_path"]:
        if os.path.isabs(parent):
            raise UsageError("--parent-path must be relative (to --image-path)")
        image_path = opts["image_path"] or os.path.join(os.getcwd(), "checkpoint")
        real_parent = os.path.join(image_path, parent)
        if not os.path.isdir(real_parent):
            raise UsageError(f"invalid --parent-path: {real_parent} is not a directory")
    raise UsageError("checkpoint is not supported: ocirun has no checkpoint/restore")
