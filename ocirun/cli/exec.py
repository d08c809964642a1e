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
    from ocirun.container import exec_process
    from ocirun.errors import UsageError
    from ocirun.process import exec_spec
    from ocirun.state import Container

    if not args:
        raise UsageError("exec: expects a container id")
    container = Container.load(ctx.root, args[0])
    if opts["process"]:
        process = exec_spec.load_process(opts["process"])
    else:
        process = exec_spec.process_from_flags(container.config["process"], opts, args[1:])
    return exec_process(container, process, opts["console_socket"], opts["detach"],
                        opts["pid_file"], opts["preserve_fds"], opts["ignore_paused"],
                        exec_spec.sub_cgroups(opts["cgroup"]))  # fmt: skip
