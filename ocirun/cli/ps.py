"""List the processes of a container: `ps -ef` (or the ps options given) filtered to the
container's processes, or their pids as a JSON array."""

from ocirun.cli.options import opt

USAGE = "ps [--format table|json] <container-id> [ps options]"
OPTIONS = [opt("--format", "-f", default="table", help="table (ps output) or json (pids)")]
STOP_AT_FIRST_ARG = True  # what follows the id is for ps(1)


def run(ctx, opts: dict, args: list[str]) -> int:
    import os

    from ocirun import jsonio
    from ocirun.errors import UsageError
    from ocirun.state import Container

    if not args:
        raise UsageError("ps: expects a container id")
    if opts["format"] not in ("table", "json"):
        raise UsageError(f"ps: invalid format {opts['format']!r} (table or json)")
    pids = Container.load(ctx.root, args[0]).cgroup().pids()
    if opts["format"] == "json":
        # runc encodes a Go nil slice: no process is `null`, not `[]`
        os.write(1, (jsonio.dumps(pids or None) + "\n").encode())
        return 0
    os.write(1, _table(args[1:] or ["-ef"], set(pids)).encode())
    return 0


def _table(ps_args: list[str], pids: set[int]) -> str:
    """ps's header, then its lines whose PID column is one of pids (runc's ps command)."""
    import subprocess

    from ocirun.errors import OcirunError

    result = subprocess.run(["ps", *ps_args], capture_output=True)
    output = result.stdout.decode(errors="replace")
    if result.returncode != 0:
        detail = (output + result.stderr.decode(errors="replace")).strip()
        raise OcirunError(f"ps {' '.join(ps_args)} failed: {detail}")
    header, *lines = output.splitlines()
    try:
        column = header.split().index("PID")
    except ValueError:
        raise OcirunError("couldn't find PID field in ps output") from None
    kept = [line for line in lines if line and int(line.split()[column]) in pids]
    return "\n".join([header, *kept]) + "\n"
