"""Change the resource limits of a running container: a JSON file of resources (the config's
linux.resources format; - for standard input), and runc's flags, which override it."""

from ocirun.cli.options import opt

USAGE = "update [options] <container-id>"
OPTIONS = [
    opt("--resources", "-r", help="JSON file of resources to update, or - for standard input"),
    opt("--blkio-weight", kind=int, help="block IO weight, 10 to 1000"),
    opt("--cpu-period", kind=int, help="CPU CFS period in microseconds"),
    opt("--cpu-quota", kind=int, help="CPU CFS quota in microseconds per period (-1: none)"),
    opt("--cpu-share", kind=int, help="CPU shares (relative weight)"),
    opt("--cpu-rt-period", kind=int, help="CPU realtime period in microseconds"),
    opt("--cpu-rt-runtime", kind=int, help="CPU realtime runtime in microseconds per period"),
    opt("--cpuset-cpus", help="CPUs to run on, e.g. 0-2,4"),
    opt("--cpuset-mems", help="memory nodes to use, e.g. 0"),
    opt("--memory", help="memory limit, in bytes or with a unit (64m, 1g); -1: none"),
    opt("--memory-reservation", help="memory soft limit, in bytes or with a unit"),
    opt("--memory-swap", help="memory plus swap limit, in bytes or with a unit; -1: none"),
    opt("--kernel-memory", help="kernel memory limit (ignored, as by runc)"),
    opt("--kernel-memory-tcp", help="kernel TCP buffer limit (ignored, as by runc)"),
    opt("--pids-limit", kind=int, help="maximum number of processes (-1: none)"),
]


def run(ctx, opts: dict, args: list[str]) -> int:
    from ocirun import resources
    from ocirun.cli import one_id
    from ocirun.container import update

    container_id = one_id(args)
    update(ctx.root, container_id, resources.from_options(opts))
    return 0
