"""The cgroup v1 driver, for legacy hosts and for hybrid ones.

On a hybrid host the process joins the cgroup2 hierarchy too (runc does), and a V2Manager on
that hierarchy drives what lives there: the controllers bound to cgroup2 (hugetlb on the
development machine) and `unified` keys.
"""

import os

from ocirun.cgroups.common import asks, mkdirs, warn
from ocirun.cgroups.detect import Host
from ocirun.cgroups.entry import Entry, MovingEntry
from ocirun.cgroups.manager import Manager, OomNotifier, sub_cgroup
from ocirun.errors import CgroupError


class V1Manager(Manager):
    def __init__(self, host: Host, paths: dict[str, str], location: str):
        """paths: the cgroup path in each hierarchy, by hierarchy name ("memory", "unified"...)."""
        self.location = location
        self._hierarchies = [(h, _join(h.mountpoint, paths[h.name])) for h in host.v1]
        self._dirs = {c: d for h, d in self._hierarchies for c in h.controllers}
        self._unified = host.v2
        self._unified_path = paths[host.v2.name] if host.v2 else ""
        self._unified_dir = _join(host.v2.mountpoint, self._unified_path) if host.v2 else ""

    def _v2(self) -> Manager:
        """The cgroup2 part of a hybrid host, for what needs more than mkdir and join."""
        if self._unified is None:
            raise CgroupError("this host has no cgroup2 hierarchy")
        from ocirun.cgroups.v2 import V2Manager

        return V2Manager(self._unified.mountpoint, self._unified_path, enable_all=False)

    def _all_dirs(self) -> list[str]:
        return [directory for _, directory in self._mounts()]

    def _mounts(self) -> list[tuple[str, str]]:
        """(mount point, cgroup directory) in every hierarchy."""
        mounts = [(h.mountpoint, directory) for h, directory in self._hierarchies]
        if self._unified:
            mounts.append((self._unified.mountpoint, self._unified_dir))
        return mounts

    def create(self) -> None:
        mounts = self._mounts()
        made = [mkdirs(directory, mountpoint) for mountpoint, directory in mounts]
        self.parents = max(0, min(made) - 1)  # made in every hierarchy: ours to remove
        self._refuse_frozen(mounts, made)
        if 0 in made:
            self.warn_if_not_empty()
        for hierarchy, directory in self._hierarchies:
            if "cpuset" in hierarchy.controllers:
                from ocirun.cgroups.v1 import cpuset

                cpuset.prepare(hierarchy.mountpoint, directory)

    def _refuse_frozen(self, mounts: list[tuple[str, str]], made: list[int]) -> None:
        """A frozen cgroup (v1 freezer, or the cgroup2 one of a hybrid host) is refused; what
        create() made is removed again."""
        from ocirun.cgroups.frozen import refuse_frozen
        from ocirun.cgroups.tree import remove_parents

        frozen = [("2", self._unified_dir)] if self._unified else []
        if directory := self._dirs.get("freezer"):
            frozen.insert(0, ("1", directory))
        try:
            refuse_frozen(frozen)
        except CgroupError:
            for (_, directory), levels in zip(mounts, made, strict=True):
                if levels:
                    os.rmdir(directory)
                    remove_parents(directory, levels - 1)
            raise

    def open_entry(self, sub_cgroups: dict[str, str] | None = None) -> Entry:
        if sub_cgroups is not None:
            return self._sub_entry(sub_cgroups)
        entry = Entry()
        try:
            for hierarchy, directory in self._hierarchies:
                entry.open_tasks(directory, memory="memory" in hierarchy.controllers)
            if self._unified:
                entry.open_cgroup2(self._unified_dir)
        except BaseException:
            entry.close()
            raise
        return entry

    def _sub_entry(self, sub_cgroups: dict[str, str]) -> Entry:
        """Each hierarchy's sub-cgroup: that of one of its controllers, else the "" one."""
        known = {c for h, _ in self._hierarchies for c in h.controllers}
        if unknown := sorted(set(sub_cgroups) - known - {""}):
            raise CgroupError(f"--cgroup: unknown controller {', '.join(unknown)}")
        directories = []
        for hierarchy, directory in self._hierarchies:
            named = [c for c in sorted(hierarchy.controllers) if c in sub_cgroups]
            path = sub_cgroups[named[0]] if named else sub_cgroups.get("", "")
            directories.append(sub_cgroup(directory, path))
        if self._unified:
            directories.append(sub_cgroup(self._unified_dir, sub_cgroups.get("", "")))
        return MovingEntry(directories)

    def write_resources(self, resources: dict, devices: list[dict] | None) -> None:
        """In runc's subsystem order; devices None leaves the device rules alone."""
        cpu = resources.get("cpu") or {}
        cpuset_part = {k: v for k, v in cpu.items() if k in ("cpus", "mems")}
        if cpuset_part and (directory := self._dir("cpuset", "cpu.cpus/mems", cpuset_part)):
            from ocirun.cgroups.v1 import cpuset

            cpuset.apply(directory, cpuset_part)
        if devices is not None and (directory := self._dir("devices", "devices", devices)):
            from ocirun.cgroups.v1 import devices as devices_controller

            devices_controller.apply(directory, devices)
        memory = resources.get("memory")
        if memory and (directory := self._dir("memory", "memory", memory)):
            from ocirun.cgroups.v1 import memory as memory_controller

            memory_controller.apply(directory, memory)
        cpu_part = {k: v for k, v in cpu.items() if k not in ("cpus", "mems")}
        if cpu_part and (directory := self._dir("cpu", "cpu", cpu_part)):
            from ocirun.cgroups.v1 import cpu as cpu_controller

            cpu_controller.apply(directory, cpu_part)
        if (pids := resources.get("pids")) and (directory := self._dir("pids", "pids", pids)):
            from ocirun.cgroups import pids as pids_controller

            pids_controller.apply(directory, pids)
        blkio = resources.get("blockIO")
        if blkio and (directory := self._dir("blkio", "blockIO", blkio)):
            from ocirun.cgroups.v1 import blkio as blkio_controller

            blkio_controller.apply(directory, blkio)
        if hugepages := resources.get("hugepageLimits"):
            self._hugetlb(hugepages)
        network = resources.get("network") or {}
        if "classID" in network and (directory := self._dir("net_cls", "network", network)):
            from ocirun.cgroups.v1 import net_cls

            net_cls.apply(directory, network)
        if "priorities" in network and (directory := self._dir("net_prio", "network", network)):
            from ocirun.cgroups.v1 import net_prio

            net_prio.apply(directory, network)
        if (rdma := resources.get("rdma")) and (directory := self._dir("rdma", "rdma", rdma)):
            from ocirun.cgroups import rdma as rdma_controller

            rdma_controller.apply(directory, rdma)
        if unified := resources.get("unified"):
            self._check_unified(unified)
            self._v2().write_resources({"unified": unified}, None)

    def _check_unified(self, unified: dict) -> None:
        """`unified` keys reach only the cgroup2 hierarchy: of a hybrid host, whose other
        controllers are v1 ones (runc refuses `unified` on any host with v1 controllers)."""
        from ocirun.cgroups.v2 import unified as unified_files

        if self._unified is None:
            raise CgroupError(
                "invalid configuration: unified: cgroup v2 keys, but this host has no cgroup2 "
                "hierarchy"
            )
        if on_v1 := sorted(unified_files.controllers(unified) & set(self._dirs)):
            raise CgroupError(
                f"invalid configuration: unified: the {', '.join(on_v1)} controller is in a "
                "cgroup v1 hierarchy on this host, out of reach of cgroup v2 keys"
            )

    def _hugetlb(self, limits: list[dict]) -> None:
        if directory := self._dirs.get("hugetlb"):
            from ocirun.cgroups.v1 import hugetlb

            hugetlb.apply(directory, limits)
        elif self._unified:  # a hybrid host whose hugetlb is bound to cgroup2
            self._v2().write_resources({"hugepageLimits": limits}, None)
        else:
            self._dir("hugetlb", "hugepageLimits", limits)

    def _dir(self, controller: str, what: str, section: object) -> str | None:
        """The controller's directory; None, with a warning, if the host lacks the controller
        and the section asks for nothing; CgroupError if it asks for something."""
        directory = self._dirs.get(controller)
        if directory is None:
            if asks(section):
                raise CgroupError(f"{what}: this host has no {controller} cgroup controller")
            warn(f"{what} ignored: this host has no {controller} cgroup controller")
        return directory

    def freeze(self) -> None:
        if directory := self._dirs.get("freezer"):
            from ocirun.cgroups.v1 import freezer

            freezer.freeze(directory)
        else:  # cgroup2's cgroup.freeze needs no controller
            self._v2().freeze()

    def thaw(self) -> None:
        if directory := self._dirs.get("freezer"):
            from ocirun.cgroups.v1 import freezer

            freezer.thaw(directory)
        else:
            self._v2().thaw()

    def freezer(self) -> str:
        if directory := self._dirs.get("freezer"):
            return f"1:{directory}"
        return f"2:{self._unified_dir}" if self._unified else ""

    def pids(self) -> list[int]:
        from ocirun.cgroups.tree import tree_pids

        return tree_pids(self._dirs.get("devices") or self._all_dirs()[0])  # as runc GetAllPids

    def kill(self) -> None:
        """runc's signalAllProcesses: freeze, so that nothing forks meanwhile, kill, thaw."""
        from ocirun.cgroups.tree import kill_pids

        if not os.path.isdir(self._dirs.get("devices") or self._all_dirs()[0]):
            return  # no cgroup, no processes
        frozen = "freezer" in self._dirs
        if frozen:
            self.freeze()
        try:
            kill_pids(self.pids())
        finally:
            if frozen:
                self.thaw()

    def stats(self) -> dict:
        from ocirun.cgroups import pids
        from ocirun.cgroups.stats import empty_stats
        from ocirun.cgroups.v1 import blkio, cpu, cpuacct, cpuset, hugetlb, memory

        data = empty_stats()
        for controller, module, key in (
            ("cpuacct", cpuacct, "cpu"),
            ("cpu", cpu, "cpu"),
            ("cpuset", cpuset, "cpuset"),
            ("memory", memory, "memory"),
            ("pids", pids, "pids"),
            ("blkio", blkio, "blkio"),
            ("hugetlb", hugetlb, "hugetlb"),
        ):
            if directory := self._dirs.get(controller):
                module.stats(directory, data[key])
        if "hugetlb" not in self._dirs and self._unified:  # hybrid: hugetlb is in cgroup2
            from ocirun.cgroups.v2 import hugetlb as unified_hugetlb

            unified_hugetlb.stats(self._unified_dir, data["hugetlb"])
        return data

    def destroy(self) -> None:
        from ocirun.cgroups.tree import remove_parents, remove_tree

        errors = []
        for directory in self._all_dirs():
            try:
                remove_tree(directory)
                remove_parents(directory, self.parents)
            except CgroupError as e:
                errors.append(e)
        if errors:
            raise errors[0]

    def oom_notifier(self) -> OomNotifier:
        directory = self._dirs.get("memory")
        if directory is None:
            raise CgroupError("no OOM notifications: this host has no memory cgroup controller")
        from ocirun.cgroups.v1.memory import OomEventfd

        return OomEventfd(directory)

    def mount_sources(self) -> list[tuple[str, str, str]]:
        sources = [(h.name, directory, "cgroup") for h, directory in self._hierarchies]
        if self._unified:
            sources.append((self._unified.name, self._unified_dir, "cgroup2"))
        return sources


def _join(mountpoint: str, path: str) -> str:
    return mountpoint if path == "/" else mountpoint + path
