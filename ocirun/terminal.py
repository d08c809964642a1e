"""Terminals: the caller's console socket, the container's pty, and the foreground proxy.

With `process.terminal`, the process opens a pty from the container's own devpts (/dev/ptmx),
sends the master over the `--console-socket` with SCM_RIGHTS (one message whose data is the
master's name, as runc sends it; containerd and conmon take the fd and ignore the name), and
makes the slave its controlling terminal and stdio. Without a console socket, a foreground
`run` or `exec` listens on a private socket itself and copies between the master and its own
terminal (`Proxy`).

This module is imported only when a terminal is used, and before the process enters the
container's root (its imports would not be found there).
"""

import _socket
import fcntl
import os
import stat

from ocirun.errors import SetupError, UsageError

TIOCGWINSZ = 0x5413
TIOCSWINSZ = 0x5414
TIOCSCTTY = 0x540E
TIOCGPTPEER = 0x5441
TIOCSPTLCK = 0x40045431
SIGWINCH = 28


def connect(path: str | None) -> int:
    """A unix socket fd (close-on-exec) connected to the caller's console socket."""
    if not path:
        raise UsageError("cannot allocate tty if ocirun will detach without setting console socket")
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise SetupError(f"cannot connect to console socket {path}: {exc.strerror}") from None
    return sock.detach()


def setup_console(socket_fd: int, size: dict | None, mount_console: bool = True) -> None:
    """Open a pty in the container's devpts, send its master, make the slave our terminal."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        _unlock(master)
        # the slave from the master itself, never looked up by path in a /dev/pts the
        # container's side could have changed (CVE-2025-52565)
        slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        if size:
            set_size(slave, size["height"], size["width"])
        if mount_console:
            _mount_console(slave)
        send_fd(socket_fd, master, "/dev/ptmx")
    finally:
        os.close(master)
        os.close(socket_fd)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    os.close(slave)
    fcntl.ioctl(0, TIOCSCTTY, 0)


def _unlock(master: int) -> None:
    """unlockpt."""
    fcntl.ioctl(master, TIOCSPTLCK, bytes(4))


def _mount_console(slave: int) -> None:
    """Bind the slave onto /dev/console, as runc does for the container's init: from the
    slave's fd onto an fd of /dev/console that is neither a symlink nor a directory."""
    from ocirun import syscalls as sc

    try:
        try:
            target = os.open("/dev/console", os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            os.close(os.open("/dev/console", flags, 0o600))
            target = os.open("/dev/console", os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            mode = os.fstat(target).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode)):
                raise SetupError("/dev/console is neither a file nor a device: not binding there")
            sc.mount(f"/proc/self/fd/{slave}", f"/proc/self/fd/{target}", None, sc.MS_BIND)
        finally:
            os.close(target)
    except OSError as exc:
        raise SetupError(f"cannot bind the console onto /dev/console: {exc.strerror}") from None


def send_fd(socket_fd: int, fd: int, name: str) -> None:
    """One SCM_RIGHTS message carrying fd, with name as the message data."""
    sock = _socket.socket(fileno=socket_fd)
    try:
        rights = fd.to_bytes(4, "little")
        sock.sendmsg([name.encode()], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
    finally:
        sock.detach()


def receive_fd(sock) -> int:
    """The fd of the first SCM_RIGHTS message on a connected socket."""
    _, ancdata, _, _ = sock.recvmsg(4096, _socket.CMSG_SPACE(4))
    for level, kind, data in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS and len(data) >= 4:
            fd = int.from_bytes(data[:4], "little")
            os.set_inheritable(fd, False)
            return fd
    raise SetupError("the console socket received no pty master")


def set_size(fd: int, rows: int, cols: int) -> None:
    winsize = rows.to_bytes(2, "little") + cols.to_bytes(2, "little") + bytes(4)
    fcntl.ioctl(fd, TIOCSWINSZ, winsize)


def copy_size(source: int, target: int) -> None:
    """Give target (a pty master) the window size of source (our terminal), if it has one."""
    try:
        winsize = fcntl.ioctl(source, TIOCGWINSZ, bytes(8))
    except OSError:
        return
    fcntl.ioctl(target, TIOCSWINSZ, winsize)


class Proxy:
    """A private console socket for a foreground process, then the copy to our terminal."""

    def __init__(self) -> None:
        import tempfile

        self.dir = tempfile.mkdtemp(prefix="ocirun-console-")
        self.path = os.path.join(self.dir, "console.sock")
        self.server = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        self.server.bind(self.path)
        self.server.listen(1)
        self.server.settimeout(10)  # the process connected during setup: never wait long
        self.master = -1
        self.saved = None
        self.thread = None

    def receive(self) -> int:
        """Accept the process's connection (queued during setup) and take the master."""
        fd, _ = self.server._accept()
        conn = _socket.socket(fileno=fd)
        try:
            self.master = receive_fd(conn)
        finally:
            conn.close()
            self.close_socket()
        return self.master

    def close_socket(self) -> None:
        if self.server.fileno() >= 0:
            self.server.close()
            os.unlink(self.path)
            os.rmdir(self.dir)

    def start(self) -> None:
        """Raw mode on our terminal, its size on the pty, and a thread copying both ways."""
        import _signal
        import threading

        if os.isatty(0):
            import termios
            import tty

            self.saved = termios.tcgetattr(0)
            tty.setraw(0)
            copy_size(0, self.master)
            _signal.signal(SIGWINCH, lambda _signum, _frame: copy_size(0, self.master))
        self.thread = threading.Thread(target=self._copy, daemon=True)
        self.thread.start()

    def _copy(self) -> None:
        """Copy stdin to the master and the master to stdout until the pty closes."""
        import select

        poller = select.poll()
        poller.register(self.master, select.POLLIN)
        poller.register(0, select.POLLIN)
        while True:
            for fd, _ in poller.poll():
                target = 1 if fd == self.master else self.master
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: every slave is closed
                    data = b""
                if not data:
                    if fd == self.master:
                        return
                    poller.unregister(0)
                    continue
                _write_all(target, data)

    def finish(self, timeout: float = 1.0) -> None:
        """Let the copy drain what the process wrote last; restore our terminal."""
        if self.thread is not None:
            self.thread.join(timeout)
        if self.saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, self.saved)
        if self.master >= 0 and not (self.thread and self.thread.is_alive()):
            os.close(self.master)  # (a copy still running keeps it: its fd is not reused)
            self.master = -1
        self.close_socket()


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]
