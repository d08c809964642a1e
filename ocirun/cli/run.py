"""Create and start a container, wait for it, delete it, and exit with its status."""

from ocirun.cli.create import OPTIONS as CREATE_OPTIONS
from ocirun.cli.options import opt

USAGE = "run [options] <container-id>"
OPTIONS = CREATE_OPTIONS + [
    opt("--detach", "-d", kind=bool, help="do not wait for the container; leave it running"),
    opt("--keep", kind=bool, help="do not delete the container after it exits"),
]

FORWARDED_SIGNALS = (1, 2, 3, 10, 12, 15, 28)  # HUP INT QUIT USR1 USR2 TERM WINCH


def run(ctx, opts: dict, args: list[str]) -> int:
    from ocirun import syscalls as sc
    from ocirun.cli import one_id
    from ocirun.cli.create import create_options
    from ocirun.container import create, delete, start

    container_id = one_id(args)
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)  # the init re-parents to us, so we can wait for it
    container = create(ctx.root, container_id, create_options(opts))
    try:
        start(ctx.root, container_id)
    except BaseException:
        delete(ctx.root, container_id, force=True)
        raise
    if opts["detach"]:
        return 0
    status = wait_for(container.pid)
    if not opts["keep"]:
        delete(ctx.root, container_id, force=True)
    return status


def wait_for(pid: int) -> int:
    """Forward signals to the init until it exits; its exit status, 128+N if killed by signal N."""
    import _signal
    import os

    def forward(signum: int, _frame) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in FORWARDED_SIGNALS:
        _signal.signal(signum, forward)
    _, status = os.waitpid(pid, 0)
    while True:  # reap what else the container left re-parented to us
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)
