"""The `ocirun` command line: global flags, then one module per command (ocirun/cli/<name>.py).

Each command module has a docstring (its help line), USAGE, OPTIONS (a list of `opt(...)`) and
`run(ctx, opts, args) -> int`. Modules are imported only when their command is called, so that
every short-lived `ocirun` process imports just what its command needs.
"""

import gc
import posix  # not os: importing os costs a light command a sixth of its time
import sys

from ocirun import OCI_VERSION, __version__
from ocirun.cli.options import opt, parse, usage_lines
from ocirun.errors import OcirunError, UsageError
from ocirun.log import configure, log

COMMANDS = (
    "create", "start", "run", "state", "kill", "delete", "list", "exec",
    "pause", "resume", "ps", "events", "update", "spec", "features", "checkpoint", "restore",
)  # fmt: skip

GLOBAL_OPTIONS = [
    opt("--root", help="root directory for container state (default /run/ocirun; not root: "
                       "$XDG_RUNTIME_DIR/ocirun)"),
    opt("--log", help="log file (default: stderr)"),
    opt("--log-format", default="text", help="log format: text or json"),
    opt("--debug", kind=bool, help="enable debug logging"),
    opt("--systemd-cgroup", kind=bool, help="make cgroups systemd units (slice:prefix:name)"),
    opt("--rootless", help="rootless cgroups: auto (not root, or in a userns), true, false"),
    opt("--criu", help="accepted for runc compatibility; ignored"),
    opt("--version", "-v", kind=bool, help="print the version"),
    opt("--help", "-h", kind=bool, help="show help"),
]  # fmt: skip


class Context:
    """What the global flags say, handed to every command."""

    def __init__(self, opts: dict) -> None:
        self.root: str = opts["root"] or _default_root()
        self.systemd_cgroup: bool = opts["systemd_cgroup"]  # cgroups as systemd units
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
    if posix.environ.get(b"XDG_RUNTIME_DIR"):
        from ocirun.rootless import make_xdg_root, xdg_root

        if root := xdg_root():
            make_xdg_root(root)
            return root
    return "/run/ocirun"


def program_name() -> str:
    """The name ocirun was called by (a link named `runc` says `runc`), as help and version
    output name the program."""
    return sys.argv[0].rpartition("/")[2] if sys.argv and sys.argv[0] else "ocirun"


def version_text() -> str:
    """runc's layout: "NAME version X", then "commit:" (here: what ocirun this is) and "spec:"."""
    return (
        f"{program_name()} version {__version__}\ncommit: ocirun {__version__}\n"
        f"spec: {OCI_VERSION}\npython: {sys.version.split()[0]}\n"
    )


def _load_command(name: str):
    if name not in COMMANDS:
        raise UsageError(f"No help topic for {name!r}")
    return __import__(f"ocirun.cli.{name}", fromlist=["run"])


def _summary(module) -> str:
    """A command's help line: the first paragraph of its module's docstring, on one line."""
    return " ".join(module.__doc__.strip().split("\n\n")[0].split())


def _help(name: str | None) -> str:
    """runc's help layout (NAME:, USAGE:, COMMANDS:/OPTIONS:), for the program's own name."""
    prog = program_name()
    if name:
        module = _load_command(name)
        lines = ["NAME:", f"   {prog} {name} - {_summary(module)}", ""]
        lines += ["USAGE:", f"   {prog} {module.USAGE}", "", "OPTIONS:"]
        lines += usage_lines(module.OPTIONS)
        return "\n".join(lines) + "\n"
    lines = ["NAME:", f"   {prog} - Open Container Initiative runtime", "", "USAGE:"]
    lines += [f"   {prog} [global options] command [command options] [arguments...]", ""]
    lines += ["VERSION:", f"   {__version__}", "", "COMMANDS:"]
    for command in COMMANDS:
        lines.append(f"   {command:<11} {_summary(_load_command(command))}")
    lines.append(f"   {'help, h':<11} Shows a list of commands or help for one command")
    lines += ["", "GLOBAL OPTIONS:"] + usage_lines(GLOBAL_OPTIONS)
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
        if not rest or opts["help"] or rest[0] in ("help", "h"):
            sys.stdout.write(_help(rest[1] if rest[1:] and rest[0] in ("help", "h") else None))
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
    would be work for nothing (the commands that may then wait for long, a foreground run
    or exec and `events`, turn the collector back on). Freeing every module and object one by
    one at exit is work for nothing too; and nothing is left to finalize: ocirun writes
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
    posix._exit(code)


def one_id(args: list[str]) -> str:
    """The single container id a command takes."""
    if len(args) != 1:
        raise UsageError(f"expects exactly one container id, got {len(args)} arguments")
    return args[0]
