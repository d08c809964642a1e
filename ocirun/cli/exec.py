"""Run a new process inside a running container (args on the command line, or --process FILE)."""

from ocirun.cli.options import opt

USAGE = "exec [options] <container-id> <command> [args...]  |  exec --process FILE <container-id>"
STOP_AT_FIRST_ARG = True
OPTIONS = [
    opt("--process", "-p", help="path to a process.json to run instead of the command line"),
    opt("--console-socket", help="unix socket to send the pty master to (terminal: true)"),
    opt("--tty", "-t", kind=bool, help="allocate a pseudo-TTY"),
    opt("--detach", "-d", kind=bool, help="do not wait for the process to exit"),
    opt("--pid-file", help="file to write the process's host pid to"),
    opt("--cwd", help="current working directory in the container"),
    opt("--env", "-e", kind=list, help="set an environment variable (repeatable)"),
    opt("--user", "-u", help="uid[:gid] to run the process as"),
    opt("--additional-gids", "-g", kind=list, help="an additional gid (repeatable)"),
    opt("--cap", "-c", kind=list, help="add a capability (repeatable)"),
    opt("--no-new-privs", kind=bool, help="set no_new_privs for the process"),
    opt("--preserve-fds", kind=int, default=0, help="pass N fds beyond stdio to the process"),
    opt("--process-label", help="SELinux label of the process (accepted, not applied)"),
    opt("--apparmor", help="AppArmor profile of the process (accepted, not applied)"),
    opt("--cgroup", kind=list,
        help="run in a sub-cgroup of the container's: PATH, or CONTROLLER[,CONTROLLER]:PATH "
             "(repeatable)"),
    opt("--ignore-paused", kind=bool, help="exec even if the container is paused"),
]  # fmt: skip
FAILED = 255  # runc's exit status for an exec that fails (the process's own are 0-255 too)


def run(ctx, opts: dict, args: list[str]) -> int:
    from ocirun.errors import OcirunError, SetupError

    try:
        return _exec(ctx, opts, args)
    except OcirunError as exc:
        exc.exit_code = FAILED
        raise
    except OSError as exc:  # a system call not wrapped in a clearer error
        error = SetupError(f"exec failed: {exc}")
        error.exit_code = FAILED
        raise error from None


def _exec(ctx, opts: dict, args: list[str]) -> int:
    from ocirun import syscalls
    from ocirun.errors import UsageError
    from ocirun.state import Container

    if not args:
        raise UsageError("exec: expects a container id")
    container = Container.load(ctx.root, args[0])
    process = load_process(opts["process"]) if opts["process"] else process_from_flags(
        container.config["process"], opts, args[1:]
    )  # fmt: skip
    proxy = console_fd = None
    if process.get("terminal"):
        if opts["console_socket"] or opts["detach"]:
            from ocirun import terminal

            console_fd = terminal.connect(opts["console_socket"])
        else:
            from ocirun.terminal import Proxy

            proxy = Proxy()
    if not opts["detach"]:
        syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)  # the process re-parents to us
    return execute(container, process, opts, console_fd, proxy)


def execute(container, process: dict, opts: dict, console_fd: int | None, proxy) -> int:
    """Start the process; without --detach wait for it (through the pty proxy with a tty)."""
    import os

    from ocirun import process_exec
    from ocirun.cli.run import Forwarder, wait_with_terminal

    if proxy is not None:
        from ocirun import terminal

        console_fd = terminal.connect(proxy.path)
    exec_opts = process_exec.ExecOptions(
        -1 if console_fd is None else console_fd, None, opts["preserve_fds"],
        opts["ignore_paused"], sub_cgroups(opts["cgroup"]),
    )  # fmt: skip
    forwarder = None if opts["detach"] else Forwarder(forward_winch=proxy is None)
    try:
        pid = process_exec.execute(container, process, exec_opts)
        if opts["pid_file"]:
            _write_pid_file(opts["pid_file"], pid)
        if proxy is not None:
            proxy.receive()
    except BaseException:
        if proxy is not None:
            proxy.finish()
        raise
    finally:
        if console_fd is not None:
            os.close(console_fd)
    if forwarder is None:
        return 0
    return wait_with_terminal(pid, proxy, forwarder)


def _write_pid_file(path: str, pid: int) -> None:
    """The pid file, or the process killed (as runc does): no process the caller cannot track."""
    from ocirun.create import write_pid_file
    from ocirun.errors import UsageError

    try:
        write_pid_file(path, pid)
    except OSError as exc:
        import os

        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        raise UsageError(f"--pid-file {path}: {exc.strerror}") from None


def sub_cgroups(values: list[str]) -> dict[str, str] | None:
    """--cgroup values as {controller: sub-path}; "" is the sub-path of every controller.

    runc's forms: one PATH alone, or any number of CONTROLLER[,CONTROLLER...]:PATH.
    """
    from ocirun.errors import UsageError

    if not values:
        return None
    paths = {}
    for value in values:
        controllers, colon, path = value.rpartition(":") if ":" in value else ("", "", value)
        if ":" in controllers:
            raise UsageError(f"invalid --cgroup argument: {value}")
        if not colon:
            if len(values) != 1:
                raise UsageError(f"invalid --cgroup argument: {value} (missing CONTROLLER: prefix)")
            paths[""] = path
            continue
        for controller in controllers.split(","):
            paths[controller] = path
    return paths


def load_process(path: str) -> dict:
    """Read and validate a process.json (`--process`)."""
    from ocirun import jsonio
    from ocirun.errors import ConfigError
    from ocirun.schema import validate_process

    try:
        process = jsonio.load_file(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"process.json: cannot read {path}: {exc}") from None
    if not isinstance(process, dict):
        raise ConfigError(f"process.json: {path} does not hold a JSON object")
    validate_process(process)
    if not process.get("args"):
        raise ConfigError("process.json: args: must name at least the program to run")
    return process


def process_from_flags(base: dict, opts: dict, command: list[str]) -> dict:
    """The container's process with the command line's changes, as runc builds it."""
    from ocirun.errors import UsageError

    if not command:
        raise UsageError("exec: expects a command to run (or --process)")
    process = dict(base, args=command, terminal=opts["tty"])  # changed parts are copied below
    process.pop("consoleSize", None)
    if opts["cwd"]:
        process["cwd"] = opts["cwd"]
    process["env"] = list(process.get("env") or []) + opts["env"]
    user = dict(process.get("user") or {"uid": 0, "gid": 0})
    if opts["user"]:
        user = parse_user(opts["user"], user)
    gids = [_number(g, "--additional-gids") for g in opts["additional_gids"]]
    if gids:
        user["additionalGids"] = list(user.get("additionalGids", [])) + gids
    process["user"] = user
    if opts["no_new_privs"]:
        process["noNewPrivileges"] = True
    if opts["cap"]:
        caps = dict(process.get("capabilities") or {})
        for field in ("bounding", "effective", "permitted", "inheritable", "ambient"):
            caps[field] = list(caps.get(field, [])) + opts["cap"]
        process["capabilities"] = caps
    return process


def parse_user(text: str, current: dict) -> dict:
    """ "uid" or "uid:gid" (numbers, as runc takes them) over the config's user."""
    uid, _, gid = text.partition(":")
    user = dict(current, uid=_number(uid, "--user"))
    if gid:
        user["gid"] = _number(gid, "--user")
    return user


def _number(text: str, flag: str) -> int:
    from ocirun.errors import UsageError

    if not text.isdigit():
        raise UsageError(f"invalid value {text!r} for {flag}: expects a number")
    return int(text)
