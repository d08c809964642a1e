"""Error and debug lines for the caller: stderr as text, or the `--log` file as JSON lines.

containerd and conmon read the last `{"level":"error","msg":...,"time":...}` line of the
`--log` file to report why a command failed; with no `--log`, lines go to stderr as text.
"""

import posix  # not os: see ocirun/state.py
import time

from ocirun import jsonio


def _timestamp() -> str:
    now = time.time()
    micros = int(now * 1_000_000) % 1_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{micros:06d}Z"


def _write_stderr(data: bytes) -> None:
    try:
        posix.write(2, data)
    except OSError:  # stderr closed or gone: nowhere left to report
        pass


class Logger:
    """Writes log lines in runc's text or json format to a file or stderr."""

    def __init__(self, path: str | None = None, fmt: str = "text", debug: bool = False) -> None:
        self.path = path
        self.fmt = fmt
        self.debug_enabled = debug

    def _emit(self, level: str, msg: str) -> None:
        if self.fmt == "json":
            line = jsonio.dumps({"level": level, "msg": msg, "time": _timestamp()})
        elif self.path:
            line = f'time="{_timestamp()}" level={level} msg="{msg}"'
        else:
            line = f"{level}: {msg}" if level != "error" else f"ocirun: {msg}"
        data = (line + "\n").encode()
        if self.path:
            flags = posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC
            fd = posix.open(self.path, flags, 0o644)
            try:
                posix.write(fd, data)
            finally:
                posix.close(fd)
            if level == "error":  # runc reports errors on stderr as well
                _write_stderr(f"ocirun: {msg}\n".encode())
        else:
            _write_stderr(data)

    def error(self, msg: str) -> None:
        self._emit("error", msg)

    def warning(self, msg: str) -> None:
        self._emit("warning", msg)

    def debug(self, msg: str) -> None:
        if self.debug_enabled:
            self._emit("debug", msg)


log = Logger()
"""The process-wide logger; the CLI configures it from the global flags."""


def configure(path: str | None, fmt: str, debug: bool) -> None:
    log.path, log.fmt, log.debug_enabled = path, fmt, debug
