"""Send a signal (default SIGTERM) to a container's init, or with --all to all its processes."""

from ocirun.cli.options import opt

USAGE = "kill [--all] <container-id> [signal]"
OPTIONS = [opt("--all", "-a", kind=bool, help="signal every process in the container")]


def run(ctx, opts: dict, args: list[str]) -> int:
    from ocirun import signals
    from ocirun.container import kill
    from ocirun.errors import UsageError

    if not 1 <= len(args) <= 2:
        raise UsageError("kill: expects a container id and optionally a signal")
    signal = signals.parse(args[1]) if len(args) == 2 else 15
    kill(ctx.root, args[0], signal, opts["all"])
    return 0
