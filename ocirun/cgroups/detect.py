"""Which cgroup hierarchies this process sees, from /proc/self/mountinfo, read on every call
(nothing is cached across processes: a container host can change between two commands)."""

from ocirun.cgroups.common import read_path
from ocirun.errors import CgroupError

V1_CONTROLLERS = frozenset(
    "cpu cpuacct cpuset memory devices freezer net_cls net_prio blkio perf_event hugetlb pids"
    " rdma misc debug".split()
)


class Hierarchy:
    """One mounted hierarchy: cgroup v1 (controllers like {"cpu", "cpuacct"} or {"name=systemd"})
    or cgroup2 (no controllers listed here: they are in its cgroup.controllers file)."""

    __slots__ = ("mountpoint", "root", "controllers", "version", "name")

    def __init__(self, mountpoint: str, root: str, controllers: frozenset[str], version: int):
        self.mountpoint = mountpoint
        self.root = root  # the hierarchy's directory that is mounted there ("/" on a host)
        self.controllers = controllers
        self.version = version
        self.name = mountpoint.rpartition("/")[2]  # "memory", "cpu,cpuacct", "systemd", "unified"


class Host:
    __slots__ = ("v1", "v2")

    def __init__(self, v1: list[Hierarchy], v2: Hierarchy | None):
        self.v1 = v1
        self.v2 = v2

    @property
    def mode(self) -> str:
        """ "unified" (cgroup2 only), "hybrid" (v1 controllers and a cgroup2) or "legacy"."""
        if not self.v1:
            return "unified"
        return "hybrid" if self.v2 else "legacy"


def host(mountinfo: str = "/proc/self/mountinfo") -> Host:
    v1: list[Hierarchy] = []
    v2 = None
    for line in read_path(mountinfo).splitlines():
        left, _, right = line.partition(" - ")
        fstype, _, rest = right.partition(" ")
        if fstype == "cgroup2":
            if v2 is None:
                fields = left.split(" ")
                v2 = Hierarchy(_unescape(fields[4]), _unescape(fields[3]), frozenset(), 2)
        elif fstype == "cgroup":
            options = rest.partition(" ")[2].split(",")
            controllers = frozenset(
                o for o in options if o in V1_CONTROLLERS or o.startswith("name=")
            )
            if controllers and all(h.controllers != controllers for h in v1):
                fields = left.split(" ")
                v1.append(Hierarchy(_unescape(fields[4]), _unescape(fields[3]), controllers, 1))
    if not any(h.controllers & V1_CONTROLLERS for h in v1):
        v1 = []  # only named v1 hierarchies (name=systemd) beside cgroup2: a unified host
    if not v1 and v2 is None:
        raise CgroupError(
            f"no cgroup filesystem is mounted (nothing of type cgroup in {mountinfo})"
        )
    return Host(v1, v2)


def own_cgroups(path: str = "/proc/self/cgroup") -> dict[frozenset[str], str]:
    """This process's cgroup in each hierarchy, keyed like Hierarchy.controllers
    (the cgroup2 line "0::/path" has the empty key)."""
    own = {}
    for line in read_path(path).splitlines():
        _, controllers, cgroup = line.split(":", 2)
        own[frozenset(controllers.split(",")) if controllers else frozenset()] = cgroup
    return own


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as \\ooo octal escapes."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)
