"""cgroup v1 cpuset controller (runc libcontainer/cgroups/fs/cpuset.go).

A v1 cpuset cgroup starts with empty cpuset.cpus and cpuset.mems, and no process can join it
(ENOSPC) until both are set: prepare() copies them from the parent, level by level.
"""

from ocirun.cgroups.common import parse_uint, read, write

FLAGS = (
    ("cpu_exclusive", "cpuset.cpu_exclusive"),
    ("mem_hardwall", "cpuset.mem_hardwall"),
    ("mem_exclusive", "cpuset.mem_exclusive"),
    ("memory_migrate", "cpuset.memory_migrate"),
    ("memory_spread_page", "cpuset.memory_spread_page"),
    ("memory_spread_slab", "cpuset.memory_spread_slab"),
    ("memory_pressure", "cpuset.memory_pressure"),
    ("sched_load_balance", "cpuset.sched_load_balance"),
)


def prepare(mountpoint: str, directory: str) -> None:
    """Fill empty cpuset.cpus/mems from the parent on every level from the hierarchy's
    mount point down to directory."""
    parent = mountpoint
    inherited: dict[str, str] = {}
    for part in directory[len(mountpoint) :].strip("/").split("/"):
        current = f"{parent}/{part}"
        for name in ("cpuset.cpus", "cpuset.mems"):
            value = read(current, name).strip()
            if not value:
                value = inherited.get(name) or read(parent, name).strip()
                write(current, name, value)
            inherited[name] = value
        parent = current


def apply(directory: str, cpu: dict) -> None:
    if cpus := cpu.get("cpus"):
        write(directory, "cpuset.cpus", cpus)
    if mems := cpu.get("mems"):
        write(directory, "cpuset.mems", mems)


def stats(directory: str, out: dict) -> None:
    from ocirun.cgroups.stats import parse_list

    cpus = parse_list(read(directory, "cpuset.cpus"))
    mems = parse_list(read(directory, "cpuset.mems"))
    flags = {key: parse_uint(read(directory, name)) for key, name in FLAGS}
    level = int(read(directory, "cpuset.sched_relax_domain_level"))
    out.clear()
    if cpus:
        out["cpus"] = cpus
    out["cpu_exclusive"] = flags.pop("cpu_exclusive")
    if mems:
        out["mems"] = mems
    out.update(flags)
    out["sched_relax_domain_level"] = level
