"""The resources document of `update`: the config's linux.resources format, read from a file or
standard input, with runc's flags laid over it, and merged into the stored config."""

from ocirun.errors import UsageError

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


def from_options(opts: dict) -> dict:
    """The --resources document (a file, or - for standard input) with the flags laid over it."""
    resources = read(opts["resources"]) if opts["resources"] else {}
    for flag, (section, key) in FLAGS.items():
        value = opts[flag]
        if value is None:
            continue
        if section == "memory":
            value = parse_size(flag, value)
        resources.setdefault(section, {})[key] = value
    return resources


def read(source: str) -> dict:
    from ocirun import jsonio

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
    return resources


def parse_size(flag: str, text: str) -> int:
    """A size as runc takes it (go-units RAMInBytes): 1024, 64m, 1.5GiB; -1 for no limit."""
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


def merge(target: dict, update: dict) -> None:
    """Lay update over target, section by section (the stored config follows `update`)."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = value
