"""The line protocol between `ocirun create` and the processes it forks to build the container.

Two pipes: children → parent carries requests and reports ("userns", "pid N", "hooks", "mount P",
"ready", "error MSG"); parent → children carries the answers ("go"). A child that dies closes its
end, so the parent never waits for a message that cannot come.
"""

import os

from ocirun.errors import OcirunError, SetupError


class ParentGone(Exception):
    """A child read end of file: the parent gave up, and reports why itself."""


class Channel:
    """Both pipes; after fork each side keeps only the ends it uses."""

    def __init__(self) -> None:
        self.up_r, self.up_w = os.pipe2(os.O_CLOEXEC)  # children -> parent
        self.down_r, self.down_w = os.pipe2(os.O_CLOEXEC)  # parent -> children
        self._buffer = b""

    def as_parent(self) -> "Channel":
        os.close(self.up_w)
        os.close(self.down_r)
        self.up_w = self.down_r = -1
        return self

    def as_child(self) -> "Channel":
        os.close(self.up_r)
        os.close(self.down_w)
        self.up_r = self.down_w = -1
        return self

    def send(self, message: str) -> None:
        fd = self.up_w if self.up_w >= 0 else self.down_w
        os.write(fd, message.replace("\n", " ").encode() + b"\n")

    def receive(self) -> str:
        """The next line from the other side; SetupError if the other side is gone."""
        fd = self.up_r if self.up_r >= 0 else self.down_r
        while b"\n" not in self._buffer:
            chunk = os.read(fd, 4096)
            if not chunk:
                if fd == self.down_r:
                    raise ParentGone
                raise SetupError("container init exited during setup")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def close(self) -> None:
        for name in ("up_r", "up_w", "down_r", "down_w"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)


def run_child(channel: Channel, function, *args) -> None:
    """Run a stage in a forked child, report any error to the parent; never return."""
    code = 1
    try:
        function(*args)
        code = 0
    except ParentGone:
        pass  # no second error line for the caller: the parent has its own
    except BaseException as exc:  # a bug too: report it, never fall back into the parent's code
        report(channel, describe(exc))
    finally:
        os._exit(code)


def describe(exc: BaseException) -> str:
    """One line for an error of a forked stage."""
    if isinstance(exc, OcirunError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.filename}: {exc.strerror}" if exc.filename else f"{exc.strerror or exc}"
    return f"internal error: {type(exc).__name__}: {exc}"


def report(channel: Channel, message: str) -> None:
    """To the parent while it listens; afterwards (after start) to the process's stderr."""
    try:
        channel.send(f"error {message}")
    except OSError:
        try:
            os.write(2, f"ocirun: {message}\n".encode())
        except OSError:
            pass
