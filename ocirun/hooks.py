"""Lifecycle hooks: each runs with the state JSON on stdin, its args, env and timeout."""

from ocirun import jsonio
from ocirun.errors import HookError
from ocirun.log import log


def run(config: dict, kind: str, state: dict, cwd: str | None = None) -> None:
    """Run every hook of one kind in order; the first failure raises HookError.

    cwd: the hooks' working directory (createContainer's: the rootfs, as runc runs them),
    else the runtime's own."""
    for i, hook in enumerate(config.get("hooks", {}).get(kind, [])):
        _run_one(hook, f"hooks.{kind}[{i}]", jsonio.dumps(state).encode(), cwd)


def run_all_logged(config: dict, kind: str, state: dict) -> None:
    """Run every hook of one kind; failures are logged and the rest still run (poststop)."""
    for i, hook in enumerate(config.get("hooks", {}).get(kind, [])):
        try:
            _run_one(hook, f"hooks.{kind}[{i}]", jsonio.dumps(state).encode())
        except HookError as exc:
            log.warning(str(exc))


def _run_one(hook: dict, where: str, stdin: bytes, cwd: str | None = None) -> None:
    import subprocess

    args = hook.get("args") or [hook["path"]]
    timeout = hook.get("timeout")
    try:
        result = subprocess.run(
            args, executable=hook["path"], input=stdin, env=_env(hook), capture_output=True,
            timeout=timeout, close_fds=True, cwd=cwd,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        ended = f"timed out after {timeout}s"
        raise HookError(f"error running hook {where}: {hook['path']} {ended}") from None
    except OSError as exc:
        why = f"cannot run {hook['path']}: {exc.strerror}"
        raise HookError(f"error running hook {where}: {why}") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).decode(errors="replace").strip()
        detail = f": {detail.splitlines()[-1]}" if detail else ""
        if result.returncode < 0:  # (subprocess has loaded signal)
            import signal

            ended = f"killed by signal: {signal.strsignal(-result.returncode).lower()}"
        else:
            ended = f"exited with status {result.returncode}"
        raise HookError(f"error running hook {where}: {hook['path']} {ended}{detail}")


def _env(hook: dict) -> dict[str, str]:
    env = {}
    for item in hook.get("env", []):
        key, _, value = item.partition("=")
        env[key] = value
    return env


def has(config: dict, kind: str) -> bool:
    return bool(config.get("hooks", {}).get(kind))
