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

# flag -> (resources section, key); the memory ones take sizes with units
FLAGS = {
    "blkio_weight": ("blockIO", "weight"),
    "cpu_period": ("cpu", "period"),
    "cpu_quota": ("cpu", "quota"),
    "cpu_share": ("cpu", "shares"),
    "cpu_rt_period": ("cpu", "realtimePeriod"),
    "cpu_rt_runtime": ("cpu", "realtimeRuntime"),
    "cpuset_cpus": ("cpu", "cpus"),
    "cpuset_mems": ("cpu", "mems"),
    "memory": ("memory", "limit"),
    "memory_reservation": ("memory", "reservation"),
    "memory_swap": ("memory", "swap"),
    "kernel_memory": ("memory", "kernel"),
    "kernel_memory_tcp": ("memory", "kernelTCP"),
    "pids_limit": ("pids", "limit"),
}
SIZES = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def run(ctx, opts: dict, args: list[str]) -> int:
    from ocirun.cli import one_id
    from ocirun.errors import InvalidState
    from ocirun.state import STOPPED, locked

    container_id = one_id(args)
    resources = _resources(opts)
    lock, container = locked(ctx.root, container_id)
    with lock:
        if container.status() == STOPPED:
            raise InvalidState(f"container not running: {container_id}")
        container.cgroup().update(resources)
        # keep the stored config in step, as runc does
        linux = container.config.setdefault("linux", {})
        _merge(linux.setdefault("resources", {}), resources)
        container.save()
    return 0


def _resources(opts: dict) -> dict:
    """The --resources document with the flags laid over it."""
    from ocirun import jsonio
    from ocirun.errors import UsageError

    resources: dict = {}
    if source := opts["resources"]:
        try:
            if source == "-":
                import sys

                text = sys.stdin.buffer.read()
            else:
                with open(source, "rb") as f:
                    text = f.read()
            resources = jsonio.loads(text)
        except OSError as exc:
            raise UsageError(f"update: cannot read {source}: {exc.strerror}") from None
        except ValueError as exc:
            raise UsageError(f"update: {source} is not JSON: {exc}") from None
        if not isinstance(resources, dict):
            raise UsageError(f"update: {source} must hold a JSON object of resources")
    for flag, (section, key) in FLAGS.items():
        value = opts[flag]
        if value is None:
            continue
        if section == "memory":
            value = _size(flag, value)
        resources.setdefault(section, {})[key] = value
    return resources


def _size(flag: str, text: str) -> int:
    """A size as runc takes it (go-units RAMInBytes): 1024, 64m, 1.5GiB; -1 for no limit."""
    from ocirun.errors import UsageError

    text = text.strip()
    if text == "-1":
        return -1
    digits = len(text) - len(text.lstrip("0123456789."))
    number, unit = text[:digits], text[digits:].strip().lower()
    unit = unit.removesuffix("b").removesuffix("i")
    if not number or number.count(".") > 1 or unit not in SIZES:
        option = "--" + flag.replace("_", "-")
        raise UsageError(f"invalid value for {option}: {text!r} (bytes, or with k, m, g, t)")
    if "." in number:
        return int(float(number) * SIZES[unit])
    return int(number) * SIZES[unit]


def _merge(target: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value
