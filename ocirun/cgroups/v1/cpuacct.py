"""cgroup v1 cpuacct controller: statistics only (runc libcontainer/cgroups/fs/cpuacct.go)."""

from ocirun.cgroups.common import parse_uint, read, read_optional

NANOSECONDS_PER_TICK = 1_000_000_000 // 100  # cpuacct.stat counts USER_HZ (100) ticks


def stats(directory: str, out: dict) -> None:
    text = read_optional(directory, "cpuacct.stat")
    if text is None:
        return
    fields = dict(line.split(" ", 1) for line in text.splitlines())
    usage = {"total": parse_uint(read(directory, "cpuacct.usage"))}
    usage["percpu"] = [int(v) for v in read(directory, "cpuacct.usage_percpu").split()]
    per_cpu = read_optional(directory, "cpuacct.usage_all")
    if per_cpu is not None:  # "cpu user system" then one line per cpu
        rows = [line.split() for line in per_cpu.splitlines()[1:]]
        usage["percpu_kernel"] = [int(row[2]) for row in rows]
        usage["percpu_user"] = [int(row[1]) for row in rows]
    usage["kernel"] = int(fields["system"]) * NANOSECONDS_PER_TICK
    usage["user"] = int(fields["user"]) * NANOSECONDS_PER_TICK
    out["usage"] = {
        key: value for key, value in usage.items() if value or key in ("kernel", "user")
    }
