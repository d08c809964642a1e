"""Error, warning and debug lines for the caller: stderr as text, or the `--log` file as text or
JSON lines.

containerd and conmon read the last `{"level":"error","msg":...,"time":...}` line of the
`--log` file to report why a command failed; with no `--log`, lines go to stderr as text.

With `--debug`, the forked stages of create and exec log too, also after the init has put the
container's stdio in place and entered the rootfs: configure() opens the destination once, and
the stages write to that descriptor (close-on-exec, so it never reaches the container's
program). Debug lines use the `time=... level=debug msg=...` form on stderr as well, and say
what runc's say at the same points ("nsexec container setup", "child process in init()",
"init: closing the pipe to signal completion", "setns_init: about to exec"): log readers, and
runc's own integration suite, look for these.
"""

import posix  # not os: see ocirun/state.py
import time

from ocirun import jsonio

_APPEND = posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC


def _timestamp() -> str:
    now = time.time()
    micros = int(now * 1_000_000) % 1_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{micros:06d}Z"


def _write_stderr(data: bytes) -> None:
    try:
        posix.write(2, data)
    except OSError:  # stderr closed or gone: nowhere left to report
        pass


def _quote(msg: str) -> str:
    return '"' + msg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class Logger:
    """Writes log lines in runc's text or json format to a file or stderr."""

    def __init__(self, path: str | None = None, fmt: str = "text", debug: bool = False) -> None:
        self.path = path
        self.fmt = fmt
        self.debug_enabled = debug
        self.fd = -1  # with --debug: the destination, opened once (see the module docstring)

    def _format(self, level: str, msg: str) -> str:
        if self.fmt == "json":
            return jsonio.dumps({"level": level, "msg": msg, "time": _timestamp()})
        if self.path or level == "debug":
            return f"time={_quote(_timestamp())} level={level} msg={_quote(msg)}"
        return f"{level}: {msg}" if level != "error" else f"ocirun: {msg}"

    def _emit(self, level: str, msg: str) -> None:
        data = (self._format(level, msg) + "\n").encode()
        if self.fd >= 0:
            try:
                posix.write(self.fd, data)
            except OSError:  # the reader is gone: debug output is not worth failing for
                pass
        elif self.path:
            try:
                fd = posix.open(self.path, _APPEND, 0o644)
            except OSError:  # no log file to be had: the line still reaches the caller
                _write_stderr(data)
            else:
                try:
                    posix.write(fd, data)
                finally:
                    posix.close(fd)
        else:
            _write_stderr(data)
        if self.path and level == "error":  # runc reports errors on stderr as well
            _write_stderr(f"ocirun: {msg}\n".encode())

    def error(self, msg: str) -> None:
        self._emit("error", msg)

    def warning(self, msg: str) -> None:
        self._emit("warning", msg)

    def debug(self, msg: str) -> None:
        if self.debug_enabled:
            self._emit("debug", msg)

    def close(self) -> None:
        """Let go of the debug descriptor (the init, before it waits for start: a caller
        reading ocirun's stderr to its end must not wait for the container's start)."""
        if self.fd >= 0:
            posix.close(self.fd)
            self.fd = -1
        self.debug_enabled = False


log = Logger()
"""The process-wide logger; the CLI configures it from the global flags."""


def configure(path: str | None, fmt: str, debug: bool) -> None:
    log.path, log.fmt, log.debug_enabled = path, fmt, debug
    if debug:
        try:
            # (a dup is close-on-exec, as os.dup makes it)
            log.fd = posix.open(path, _APPEND, 0o644) if path else posix.dup(2)
        except OSError:  # each line tries again (and falls back to stderr)
            log.fd = -1
