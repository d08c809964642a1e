"""The cgroup v2 driver: a unified host, or the cgroup2 hierarchy of a hybrid one.

The root of the hierarchy is a parameter, so that tests can point the driver at a directory
tree shaped like a cgroup2 mount.
"""

import errno
import os

from ocirun.cgroups.common import asks, read, warn, write_errno, write_error
from ocirun.cgroups.entry import Entry, MovingEntry
from ocirun.cgroups.manager import Manager, OomNotifier, sub_cgroup
from ocirun.errors import CgroupError


class V2Manager(Manager):
    def __init__(self, root: str, location: str, enable_all: bool = True):
        """root: where the hierarchy is mounted; location: the cgroup below it ("/ocirun/abc").
        enable_all: enable every available controller down the path at create(), as runc
        does on a unified host. On a hybrid host (False) a controller is enabled when a limit
        needs it."""
        self.root = root
        self.location = location
        self.dir = root if location == "/" else root + location
        self._enable_all = enable_all
        self._controllers: set[str] | None = None  # enabled for the cgroup, read once per write

    def create(self) -> None:
        controllers = self._available() if self._enable_all else []
        current, made, existed = self.root, 0, True
        for part in filter(None, self.location.split("/")):
            if controllers:
                _enable(current, controllers)
            current = f"{current}/{part}"
            try:
                os.mkdir(current, 0o755)
                made += 1
                existed = False
            except FileExistsError:
                existed = True
            except OSError as e:
                raise CgroupError(f"cannot create {current}: {e.strerror}") from None
        self.parents = max(0, made - 1)  # the levels above the cgroup that were ours
        try:
            from ocirun.cgroups.frozen import refuse_frozen

            refuse_frozen([("2", self.dir)])
        except CgroupError:
            if made:  # frozen with an ancestor: the cgroup is new, and ours to remove
                self.destroy()
            raise
        if existed:
            self.warn_if_not_empty()

    def open_entry(self, sub_cgroups: dict[str, str] | None = None) -> Entry:
        if sub_cgroups is not None:
            if set(sub_cgroups) != {""}:
                raise CgroupError("--cgroup: cgroup v2 has one hierarchy: give a PATH alone")
            return MovingEntry([sub_cgroup(self.dir, sub_cgroups[""])])
        entry = Entry()
        entry.open_cgroup2(self.dir)
        return entry

    def write_resources(self, resources: dict, devices: list[dict] | None) -> None:
        """In runc's fs2 order; `unified` last so that it overrides the converted values."""
        self._controllers = None
        if (pids := resources.get("pids")) and self._require("pids", "pids", pids):
            from ocirun.cgroups import pids as pids_controller

            pids_controller.apply(self.dir, pids)
        if (memory := resources.get("memory")) and self._require("memory", "memory", memory):
            from ocirun.cgroups.v2 import memory as memory_controller

            memory_controller.apply(self.dir, memory)
        if (blkio := resources.get("blockIO")) and self._require("io", "blockIO", blkio):
            from ocirun.cgroups.v2 import io

            io.apply(self.dir, blkio)
        cpu = resources.get("cpu") or {}
        cpu_part = {k: v for k, v in cpu.items() if k not in ("cpus", "mems")}
        if cpu_part and self._require("cpu", "cpu", cpu_part):
            from ocirun.cgroups.v2 import cpu as cpu_controller

            cpu_controller.apply(self.dir, cpu_part)
        if devices is not None:  # no controller: a BPF program on the cgroup
            from ocirun.cgroups.v2 import devices as devices_controller

            devices_controller.apply(self.dir, devices)
        cpuset_part = {k: v for k, v in cpu.items() if k in ("cpus", "mems")}
        if cpuset_part and self._require("cpuset", "cpu.cpus/mems", cpuset_part):
            from ocirun.cgroups.v2 import cpuset

            cpuset.apply(self.dir, cpuset_part)
        if (limits := resources.get("hugepageLimits")) and self._require(
            "hugetlb", "hugepageLimits", limits
        ):
            from ocirun.cgroups.v2 import hugetlb

            hugetlb.apply(self.dir, limits)
        if (rdma := resources.get("rdma")) and self._require("rdma", "rdma", rdma):
            from ocirun.cgroups import rdma as rdma_controller

            rdma_controller.apply(self.dir, rdma)
        if network := resources.get("network"):
            if asks(network):
                raise CgroupError("network: cgroup v2 has no net_cls/net_prio controllers")
            warn("network ignored: cgroup v2 has no net_cls/net_prio controllers")
        if unified := resources.get("unified"):
            from ocirun.cgroups.v2 import unified as unified_files

            for controller in sorted(unified_files.controllers(unified)):
                self._require(controller, f"unified {controller}.*", unified)
            unified_files.apply(self.dir, unified)

    def _require(self, controller: str, what: str, section: object) -> bool:
        """Whether the controller is usable in the cgroup, enabling it down the path if it is
        available in the hierarchy. A missing controller is a warning if the section asks for
        nothing, a CgroupError if it asks for something (the spec's rule for `unified`)."""
        if self._controllers is None:
            self._controllers = set(read(self.dir, "cgroup.controllers").split())
        if controller in self._controllers:
            return True
        if controller in self._available():
            current = self.root
            for part in filter(None, self.location.split("/")):
                _enable(current, [controller])
                current = f"{current}/{part}"
            self._controllers = set(read(self.dir, "cgroup.controllers").split())
            if controller in self._controllers:
                return True
        if asks(section):
            raise CgroupError(
                f"{what}: the {controller} controller is not available in the cgroup v2 "
                f"hierarchy at {self.root}"
            )
        warn(
            f"{what} ignored: no {controller} controller in the cgroup v2 hierarchy at {self.root}"
        )
        return False

    def _available(self) -> list[str]:
        return read(self.root, "cgroup.controllers").split()

    def delegate(self, uid: int, gid: int) -> None:
        from ocirun.cgroups.delegation import chown_cgroup

        chown_cgroup(self.dir, uid, gid)

    def freeze(self) -> None:
        from ocirun.cgroups.v2 import freezer

        freezer.freeze(self.dir)

    def thaw(self) -> None:
        from ocirun.cgroups.v2 import freezer

        freezer.thaw(self.dir)

    def freezer(self) -> str:
        return f"2:{self.dir}"

    def pids(self) -> list[int]:
        from ocirun.cgroups.tree import tree_pids

        return tree_pids(self.dir)

    def kill(self) -> None:
        """cgroup.kill (Linux 5.14) kills the whole subtree at once; before it, freeze,
        signal every process, thaw."""
        err = write_errno(self.dir, "cgroup.kill", "1")
        if err == errno.ENOENT and os.path.isdir(self.dir):
            from ocirun.cgroups.tree import kill_pids

            self.freeze()
            try:
                kill_pids(self.pids())
            finally:
                self.thaw()
        elif err and err != errno.ENOENT:  # ENOENT with no directory: nothing left to kill
            raise write_error(self.dir, "cgroup.kill", "1", err)

    def stats(self) -> dict:
        from ocirun.cgroups import pids
        from ocirun.cgroups.stats import empty_stats
        from ocirun.cgroups.v2 import cpu, hugetlb, io, memory

        data = empty_stats()
        cpu.stats(self.dir, data["cpu"])
        memory.stats(self.dir, data["memory"])
        pids.stats(self.dir, data["pids"])
        io.stats(self.dir, data["blkio"])
        hugetlb.stats(self.dir, data["hugetlb"])
        return data

    def destroy(self) -> None:
        from ocirun.cgroups.tree import remove_parents, remove_tree

        remove_tree(self.dir)
        remove_parents(self.dir, self.parents)

    def oom_notifier(self) -> OomNotifier:
        from ocirun.cgroups.v2.memory import OomEvents

        return OomEvents(self.dir)

    def mount_sources(self) -> list[tuple[str, str, str]]:
        return [("", self.dir, "cgroup2")]


def _enable(directory: str, controllers: list[str]) -> None:
    """Enable controllers for the children of directory; what cannot be enabled (a controller
    taken by v1, a cgroup with processes) is left for the limits that need it to report."""
    if write_errno(directory, "cgroup.subtree_control", " ".join("+" + c for c in controllers)):
        for controller in controllers:
            write_errno(directory, "cgroup.subtree_control", "+" + controller)
