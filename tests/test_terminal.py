"""Terminals with real containers: the console socket, consoleSize, foreground run and exec."""

import array
import fcntl
import os
import pty
import select
import socket
import struct
import termios
import time

import pytest
from helpers import OCIRUN


class ConsoleSocket:
    """The caller's end of --console-socket: a listening unix socket that takes one master."""

    def __init__(self, path) -> None:
        self.path = str(path)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(1)
        self.server.settimeout(10)
        self.name = b""

    def receive(self) -> int:
        conn, _ = self.server.accept()
        with conn:
            fds = array.array("i")
            self.name, ancdata, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(fds.itemsize))
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: fds.itemsize])
        self.server.close()
        return fds[0]


def read_until(fd: int, marker: bytes, timeout: float = 10) -> bytes:
    """Read a pty master until marker shows up (or EOF / EIO when the slave closes)."""
    out = b""
    deadline = time.monotonic() + timeout
    while marker not in out and time.monotonic() < deadline:
        if not select.select([fd], [], [], 0.2)[0]:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        out += data
    return out


def window(rows: int, cols: int) -> bytes:
    return struct.pack("HHHH", rows, cols, 0, 0)


@pytest.fixture
def terminal_bundle(make_bundle):
    def make(args=("sh",), size=None):
        bundle = make_bundle(list(args))
        bundle.config["process"]["terminal"] = True
        if size:
            bundle.config["process"]["consoleSize"] = {"height": size[0], "width": size[1]}
        return bundle.write()

    return make


def test_console_socket_receives_the_master(ocirun, terminal_bundle, cid, tmp_path):
    console = ConsoleSocket(tmp_path / "console.sock")
    result = ocirun("create", "--console-socket", console.path, "-b", terminal_bundle(), cid)
    assert result.returncode == 0, result.stderr
    master = console.receive()
    try:
        assert console.name == b"/dev/ptmx"
        ocirun("start", cid, check=True)
        script = b"tty; test -c /dev/console && echo console-ok; echo $((6*7)); exit\n"
        os.write(master, script)
        output = read_until(master, b"42\r\n")
    finally:
        os.close(master)
    assert b"/dev/pts/0" in output and b"console-ok" in output and b"42\r\n" in output


def test_console_size(ocirun, terminal_bundle, cid, tmp_path):
    console = ConsoleSocket(tmp_path / "console.sock")
    bundle = terminal_bundle(["stty", "size"], size=(25, 80))
    ocirun("create", "--console-socket", console.path, "-b", bundle, cid, check=True)
    master = console.receive()
    try:
        ocirun("start", cid, check=True)
        output = read_until(master, b"25 80")
    finally:
        os.close(master)
    assert b"25 80" in output


def test_terminal_without_console_socket_fails_create(ocirun, terminal_bundle, cid):
    result = ocirun("create", "-b", terminal_bundle(), cid)
    assert result.returncode == 1
    assert "cannot allocate tty" in result.stderr and "console socket" in result.stderr
    assert ocirun.ids() == []


def test_detached_run_with_terminal_needs_console_socket(ocirun, terminal_bundle, cid):
    result = ocirun("run", "--detach", "-b", terminal_bundle(), cid)
    assert result.returncode == 1 and "console socket" in result.stderr
    assert ocirun.ids() == []


def test_exec_tty_with_console_socket(ocirun, make_bundle, cid, tmp_path):
    ocirun("run", "-d", "-b", make_bundle(["sleep", "1000"]).write(), cid, check=True)
    console = ConsoleSocket(tmp_path / "console.sock")
    pid_file = tmp_path / "exec.pid"
    script = "tty; read x; stty size"
    result = ocirun("exec", "--tty", "--detach", "--console-socket", console.path,
                    "--pid-file", str(pid_file), cid, "sh", "-c", script)  # fmt: skip
    assert result.returncode == 0 and result.stdout == "", result.stderr
    master = console.receive()
    try:
        output = read_until(master, b"\r\n")
        fcntl.ioctl(master, termios.TIOCSWINSZ, window(33, 77))  # as the shim and conmon do
        os.write(master, b"go\n")
        output += read_until(master, b"33 77")
    finally:
        os.close(master)
    assert output.startswith(b"/dev/pts/") and b"33 77" in output
    assert int(pid_file.read_text()) > 0


def test_exec_tty_detached_without_console_socket_fails(ocirun, make_bundle, cid):
    """exec fails as all its failures do, with runc's status 255."""
    ocirun("run", "-d", "-b", make_bundle(["sleep", "1000"]).write(), cid, check=True)
    result = ocirun("exec", "-t", "-d", cid, "true")
    assert result.returncode == 255 and "console socket" in result.stderr


def in_terminal(argv: list[str], script: bytes, rows: int = 30, cols: int = 100):
    """Run argv on a new pty of the given size, type script once the shell prompts; → output,
    exit status."""
    pid, master = pty.fork()
    if pid == 0:
        os.execv(argv[0], argv)
    fcntl.ioctl(master, termios.TIOCSWINSZ, window(rows, cols))
    try:
        output = read_until(master, b"# ")
        os.write(master, script)
        output += read_until(master, b"\0never\0", timeout=10)
    finally:
        os.close(master)
    _, status = os.waitpid(pid, 0)
    return output, os.waitstatus_to_exitcode(status)


def test_foreground_run_proxies_the_terminal(ocirun, terminal_bundle, cid):
    argv = [OCIRUN, "--root", str(ocirun.root), "run", "-b", terminal_bundle(), cid]
    output, status = in_terminal(argv, b"tty; stty size; exit 5\r")
    assert status == 5, output
    assert b"/dev/pts/0\r\n30 100\r\n" in output
    assert ocirun.ids() == []


def test_foreground_exec_tty_proxies_the_terminal(ocirun, make_bundle, cid):
    ocirun("run", "-d", "-b", make_bundle(["sleep", "1000"]).write(), cid, check=True)
    argv = [OCIRUN, "--root", str(ocirun.root), "exec", "-t", cid, "sh"]
    output, status = in_terminal(argv, b"tty; stty size; exit 6\r", rows=20, cols=60)
    assert status == 6, output
    assert b"/dev/pts/" in output and b"20 60\r\n" in output


def test_exec_tty_belongs_to_the_processs_user(ocirun, make_bundle, cid, tmp_path):
    ocirun("run", "-d", "-b", make_bundle(["sleep", "1000"]).write(), cid, check=True)
    console = ConsoleSocket(tmp_path / "console.sock")
    script = "stat -c %u $(tty); echo hi >/dev/tty && echo reopened"
    ocirun("exec", "-t", "-d", "--console-socket", console.path, "-u", "1000", cid,
           "sh", "-c", script, check=True)  # fmt: skip
    master = console.receive()
    try:
        output = read_until(master, b"reopened")
    finally:
        os.close(master)
    assert output.split() == [b"1000", b"hi", b"reopened"]
