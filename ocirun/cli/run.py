"""Create and start a container, wait for it, delete it, and exit with its status."""

from ocirun.cli.create import OPTIONS as CREATE_OPTIONS
from ocirun.cli.options import opt

USAGE = "run [options] <container-id>"
OPTIONS = CREATE_OPTIONS + [
    opt("--detach", "-d", kind=bool, help="do not wait for the container; leave it running"),
    opt("--keep", kind=bool, help="do not delete the container after it exits"),
]

FORWARDED_SIGNALS = (1, 2, 3, 10, 12, 15, 28)  # HUP INT QUIT USR1 USR2 TERM WINCH
SIGWINCH = 28


def run(ctx, opts: dict, args: list[str]) -> int:
    from ocirun import syscalls as sc
    from ocirun.cli import one_id
    from ocirun.cli.create import create_options
    from ocirun.container import delete, start_locked
    from ocirun.create import create

    container_id = one_id(args)
    proxy = None
    if not opts["console_socket"] and not opts["detach"] and wants_terminal(opts["bundle"]):
        from ocirun.terminal import Proxy

        proxy = Proxy()  # a foreground terminal: we are the console socket's other end
        opts["console_socket"] = proxy.path
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)  # the init re-parents to us, so we can wait for it
    try:
        options = create_options(ctx, opts)
        container, lock = create(ctx.root, container_id, options, keep_lock=True)
    except BaseException:
        if proxy is not None:
            proxy.finish()
        raise
    forwarder = None if opts["detach"] else Forwarder(forward_winch=proxy is None)
    try:
        if proxy is not None:
            proxy.receive()
        start_locked(container, lock)  # still create's lock: nothing to load again
    except BaseException:
        lock.release()
        if proxy is not None:
            proxy.finish()
        delete(ctx.root, container_id, force=True)
        raise
    if forwarder is None:
        return 0
    status = wait_with_terminal(container.pid, proxy, forwarder)
    if not opts["keep"]:
        delete(ctx.root, container_id, force=True)
    return status


def wants_terminal(bundle: str) -> bool:
    """Whether the bundle's config asks for a terminal (an unreadable config: create reports)."""
    from ocirun import config as cfg
    from ocirun.errors import ConfigError

    try:
        return bool(cfg.load(bundle).get("process", {}).get("terminal"))
    except ConfigError:
        return False


class Forwarder:
    """Signals for the container's process: caught from before it runs, so that none kills us
    in between, and sent on to it once its pid is known."""

    def __init__(self, forward_winch: bool = True) -> None:
        import _signal

        self.pid = 0
        self.pending: list[int] = []
        for signum in FORWARDED_SIGNALS:
            if forward_winch or signum != SIGWINCH:
                _signal.signal(signum, self._caught)

    def _caught(self, signum: int, _frame) -> None:
        if self.pid:
            _send(self.pid, signum)
        else:
            self.pending.append(signum)

    def target(self, pid: int) -> None:
        self.pid = pid
        for signum in self.pending:
            _send(pid, signum)
        self.pending.clear()


def _send(pid: int, signum: int) -> None:
    import os

    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def wait_with_terminal(pid: int, proxy, forwarder: Forwarder) -> int:
    """wait_for, copying between the pty and our terminal meanwhile when there is a proxy."""
    import gc

    gc.enable()  # (off for the setup, see cli.entry) a container may run for days
    if proxy is None:
        return wait_for(pid, forwarder)
    proxy.start()
    try:
        return wait_for(pid, forwarder)
    finally:
        proxy.finish()


def wait_for(pid: int, forwarder: Forwarder) -> int:
    """Forward signals to pid until it exits; its exit status, 128+N if killed by signal N."""
    import os

    forwarder.target(pid)
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
