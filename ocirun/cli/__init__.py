"""The `ocirun` command line: global flags, then one module per command (ocirun/cli/<name>.py).

Each command module has a docstring (its help line), USAGE, OPTIONS (a list of `opt(...)`) and
`run(ctx, opts, args) -> int`. Modules are imported only when their command is called, so that
every short-lived `ocirun` process imports just what its command needs.
"""

import gc
import os
import sys

from ocirun import OCI_VERSION, __version__
from ocirun.cli.options import opt, parse, usage_lines
from ocirun.errors import OcirunError, UsageError
from ocirun.log import configure, log

COMMANDS = (
    "create", "start", "run", "state", "kill", "delete", "list", "exec",
    "pause", "resume", "ps", "events", "update", "spec", "features",
)  # fmt: skip

GLOBAL_OPTIONS = [
    opt("--root", help="root directory for container state (default /run/ocirun; not root: "
                       "$XDG_RUNTIME_DIR/ocirun)"),
    opt("--log", help="log file (default: stderr)"),
    opt("--log-format", default="text", help="log format: text or json"),
    opt("--debug", kind=bool, help="enable debug logging"),
    opt("--systemd-cgroup", kind=bool, help="use systemd cgroups (not supported)"),
    opt("--rootless", help="rootless cgroups: auto (not root, or in a userns), true, false"),
    opt("--criu", help="accepted for runc compatibility; ignored"),
    opt("--version", "-v", kind=bool, help="print the version"),
    opt("--help", "-h", kind=bool, help="show help"),
]  # fmt: skip


class Context:
    """What the global flags say, handed to every command."""

    def __init__(self, opts: dict) -> None:
        self.root: str = opts["root"] or _default_root()
        self.systemd_cgroup: bool = opts["systemd_cgroup"]
        self.rootless: str | None = opts["rootless"]
        if self.rootless is not None:
            from ocirun.rootless import check_flag

            check_flag(self.rootless)

    @property
    def rootless_cgroups(self) -> bool:
        """Whether a container without cgroupsPath may go without a cgroup (see rootless)."""
        from ocirun.rootless import rootless_cgroups

        return rootless_cgroups(self.rootless)


def _default_root() -> str:
    """/run/ocirun, or $XDG_RUNTIME_DIR/ocirun (made now) where runc would use its XDG twin."""
    if os.environ.get("XDG_RUNTIME_DIR"):
        from ocirun.rootless import make_xdg_root, xdg_root

        if root := xdg_root():
            make_xdg_root(root)
            return root
    return "/run/ocirun"


def version_text() -> str:
    return f"ocirun version {__version__}\nspec: {OCI_VERSION}\npython: {sys.version.split()[0]}\n"


def _load_command(name: str):
    if name not in COMMANDS:
        raise UsageError(f"no such command: {name!r} (see 'ocirun help')")
    return __import__(f"ocirun.cli.{name}", fromlist=["run"])


def _help(name: str | None) -> str:
    if name:
        module = _load_command(name)
        lines = [f"usage: ocirun {module.USAGE}", "", module.__doc__.strip(), "", "options:"]
        return "\n".join(lines + usage_lines(module.OPTIONS)) + "\n"
    lines = ["usage: ocirun [global options] command [options] [arguments]", "", "commands:"]
    lines += [f"   {name}" for name in COMMANDS]
    lines += ["", "global options:"] + usage_lines(GLOBAL_OPTIONS)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: parse, dispatch, turn errors into exit codes."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        opts, rest = parse(GLOBAL_OPTIONS, argv, stop_at_first_arg=True)
        configure(opts["log"], opts["log_format"], opts["debug"])
        if opts["version"]:
            sys.stdout.write(version_text())
            return 0
        if not rest or opts["help"] or rest[0] == "help":
            sys.stdout.write(_help(rest[1] if rest[1:] and rest[0] == "help" else None))
            return 0
        module = _load_command(rest[0])
        command_opts, args = parse(
            module.OPTIONS + [opt("--help", "-h", kind=bool)], rest[1:],
            stop_at_first_arg=getattr(module, "STOP_AT_FIRST_ARG", False),
        )  # fmt: skip
        if command_opts["help"]:
            sys.stdout.write(_help(rest[0]))
            return 0
        return module.run(Context(opts), command_opts, args)
    except OcirunError as exc:
        log.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # a system call we did not wrap in a clearer error
        log.error(str(exc))
        return 1
    except Exception as exc:  # a bug: still one line for the caller, never a traceback
        log.error(f"internal error: {type(exc).__name__}: {exc}")
        return 1


def entry() -> None:
    """The `ocirun` executable: main() without the cyclic garbage collector, then out without
    finalizing the interpreter.

    A command's few thousand objects live until it exits: collecting them while it imports
    cost ~1.5 ms of a `run` here (the commands that may then wait for long, a foreground run
    or exec and `events`, turn the collector back on). Freeing every module and object one by
    one at exit costs ~3 ms, a fifth of `state`; nothing is left to finalize: ocirun writes
    its files with os.write or closes them and registers no atexit handler, so only the
    standard streams may hold buffered output.
    """
    gc.disable()
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or gone, as Python's own exit would find it
            code = code or 120
    os._exit(code)


def one_id(args: list[str]) -> str:
    """The single container id a command takes."""
    if len(args) != 1:
        raise UsageError(f"expects exactly one container id, got {len(args)} arguments")
    return args[0]
