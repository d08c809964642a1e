"""The caller's end of `--console-socket`: receive the pty master and copy what it says."""

from __future__ import annotations

import array
import os
import socket
import threading
from pathlib import Path


class ConsoleSocket:
    """Listens on a unix socket for one SCM_RIGHTS message carrying the pty master."""

    def __init__(self, path: Path, output: Path, timeout: float) -> None:
        self.path = path
        self.output = output
        self.timeout = timeout
        self.master: int | None = None
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.server.settimeout(timeout)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(self.timeout)
            self.master = receive_fd(conn)
        if self.master is not None:
            copy_until_closed(self.master, self.output)

    def finish(self, timeout: float) -> None:
        self.thread.join(timeout)
        self.server.close()


def receive_fd(conn: socket.socket) -> int | None:
    fds = array.array("i")
    try:
        _, ancdata, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(fds.itemsize))
    except OSError:
        return None
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    return fds[0] if fds else None


def copy_until_closed(master: int, output: Path) -> None:
    with output.open("ab") as out:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out.write(chunk)
            out.flush()
    os.close(master)
