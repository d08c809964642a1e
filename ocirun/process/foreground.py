"""A container process that ocirun waits for (`run` and `exec` without --detach): the signals
ocirun receives go on to it, a terminal is copied through the pty proxy, and its exit status
becomes ocirun's."""

FORWARDED_SIGNALS = (1, 2, 3, 10, 12, 15, 28)  # HUP INT QUIT USR1 USR2 TERM WINCH
SIGWINCH = 28


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
