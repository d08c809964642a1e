"""The shape of runc's `events --stats` data (types/events.go as of runc 1.1), with Go's
omitempty: zero numbers and empty lists left out, structs always there."""


def parse_list(text: str) -> list[int]:
    """A cpu or node list ("0-3,7") as numbers."""
    out: list[int] = []
    for part in text.strip().split(","):
        if part:
            first, _, last = part.partition("-")
            out.extend(range(int(first), int(last or first) + 1))
    return out


def memory_entry(limit: int, usage: int, max_usage: int, failcnt: int) -> dict:
    """runc's types.MemoryEntry, with its omitempty fields left out when zero."""
    entry = {"limit": limit}
    if usage:
        entry["usage"] = usage
    if max_usage:
        entry["max"] = max_usage
    entry["failcnt"] = failcnt
    return entry


def empty_stats() -> dict:
    """runc's types.Stats for a cgroup with no readable controller; the drivers fill it in."""
    no_memory = memory_entry(0, 0, 0, 0)
    return {
        "cpu": {"usage": {"kernel": 0, "user": 0}, "throttling": {}},
        "cpuset": {
            "cpu_exclusive": 0,
            "mem_hardwall": 0,
            "mem_exclusive": 0,
            "memory_migrate": 0,
            "memory_spread_page": 0,
            "memory_spread_slab": 0,
            "memory_pressure": 0,
            "sched_load_balance": 0,
            "sched_relax_domain_level": 0,
        },
        "memory": {
            "usage": no_memory,
            "swap": dict(no_memory),
            "kernel": dict(no_memory),
            "kernelTCP": dict(no_memory),
        },
        "pids": {},
        "blkio": {},
        "hugetlb": {},
        "intel_rdt": {},
        "network_interfaces": None,
    }
