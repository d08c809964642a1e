"""Calling the runtime under test through its runc-style command line."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

# Set in every runtime call; a container or hook must never see it.
LEAK_MARKER = "CONFORMANCE_LEAK=from-the-runtime-caller"


@dataclass
class Result:
    argv: list[str]
    rc: int | None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0

    @property
    def timed_out(self) -> bool:
        return self.rc is None

    def summary(self) -> str:
        if self.timed_out:
            return f"timed out after {self.seconds:.1f}s"
        text = f"exit {self.rc}"
        detail = (self.stderr or self.stdout).strip().splitlines()
        return f"{text}: {detail[-1][:200]}" if detail else text


@dataclass
class Call:
    args: list[str]
    timeout: float
    cwd: Path | None = None
    stdout: IO[Any] | None = None
    stderr: IO[Any] | None = None
    pass_fds: tuple[int, ...] = ()
    caller: dict[str, int] = field(default_factory=dict)


def runtime_env() -> dict[str, str]:
    key, _, value = LEAK_MARKER.partition("=")
    return {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        key: value,
    }


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def caller_setup(caller: dict[str, int]) -> Callable[[], None] | None:
    """Process attributes the runtime inherits from its caller (umask, oom_score_adj)."""
    if not caller:
        return None

    def setup() -> None:
        if "umask" in caller:
            os.umask(caller["umask"])
        if "oom_score_adj" in caller:
            Path("/proc/self/oom_score_adj").write_text(str(caller["oom_score_adj"]))

    return setup


class Runtime:
    def __init__(self, path: str, root: Path) -> None:
        self.path = path
        self.root = root
        self.version = self._version()
        self.features = self._features()

    def argv(self, args: list[str]) -> list[str]:
        return [self.path, "--root", str(self.root), *args]

    def call(self, call: Call) -> Result:
        argv = self.argv(call.args)
        began = time.monotonic()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=call.stdout or subprocess.PIPE,
            stderr=call.stderr or subprocess.PIPE,
            cwd=call.cwd,
            env=runtime_env(),
            pass_fds=call.pass_fds,
            start_new_session=True,
            preexec_fn=caller_setup(call.caller),
        )
        try:
            out, err = proc.communicate(timeout=call.timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            return Result(argv, None, seconds=time.monotonic() - began)
        return Result(
            argv,
            proc.returncode,
            (out or b"").decode(errors="replace"),
            (err or b"").decode(errors="replace"),
            time.monotonic() - began,
        )

    def _version(self) -> str:
        try:
            out = subprocess.run(
                [self.path, "--version"], capture_output=True, timeout=10, env=runtime_env()
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return out.stdout.decode(errors="replace").strip()

    def _features(self) -> dict[str, Any] | None:
        result = self.call(Call(["features"], timeout=10))
        if result.rc != 0:
            return None
        try:
            data = json.loads(result.stdout)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def matches(self, key: str) -> bool:
        """Whether a deviation key (`NAME` or `NAME VERSION-PREFIX`) names this runtime."""
        first = self.version.splitlines()[0] if self.version else ""
        words = first.split()
        if not words:
            return False
        name, _, prefix = key.partition(" ")
        if words[0].lower() != name.lower():
            return False
        version = re.search(r"\d+\.\d+[^\s]*", first)
        return not prefix or bool(version and version.group(0).startswith(prefix))
