"""Where a container's cgroup goes, as runc 1.1 with its cgroupfs driver decides
(libcontainer/specconv createCgroupConfig, cgroups/fs/paths.go, cgroups/fs2/defaultpath.go;
verified in its source):

- cgroupsPath is first cleaned lexically (runc utils.CleanPath): "a//b/../c" is "a/c", and a
  relative path cannot climb out of where it is joined ("../../x" is "x").
- Absolute, "/a/b": that path below the root of every hierarchy (/sys/fs/cgroup/memory/a/b...,
  /sys/fs/cgroup/a/b on a unified host), whatever cgroup the runtime itself is in.
- Relative, "a/b": on v1, below the runtime's own cgroup in each hierarchy (/proc/self/cgroup;
  runc GetOwnCgroupPath), so the path can differ between hierarchies; the cgroup2 hierarchy of
  a hybrid host gets "/a/b" (runc's hybrid own path is the mount point). On a unified host,
  below the *parent* of the runtime's own cgroup (a cgroup with processes in it cannot enable
  controllers for children).
- Absent: runc does not use "/<id>": it sets Name=<id> with an empty Path, which is the
  relative path "<id>", placed as above.
- "slice:prefix:name" (systemd form): CgroupError, as runc's cgroupfs driver; with
  --systemd-cgroup (systemd=True) the systemd driver (cgroups/systemd/) takes the path instead.
- A path that resolves to a hierarchy root, or to the runtime's own cgroup ("/", "."), is
  refused: destroy() would try to remove it.
- Rootless (runc's --rootless, by default when not the host's root) and no cgroupsPath: where
  this process may not make the cgroup or move itself into it in every hierarchy, no cgroup
  at all (absent.NoCgroup: limits are then refused). With a cgroupsPath, a cgroup it may
  not make is an error, as for root.

mgr.path is the resolved cgroup path ("/ocirun/abc"). When a relative path resolves differently
in some hierarchies, they follow after ";" by hierarchy name:
"/abc;memory=/process_api/x/abc". After create(), ";parents=N" says that create() also made
the N levels above the cgroup, which destroy() removes again when they are empty (the spec's
delete removes what create made; runc 1.1 leaves them). That string is what open_existing()
takes back.
"""

import os

from ocirun.cgroups import detect
from ocirun.cgroups.manager import Manager
from ocirun.errors import CgroupError


def manager_for(cgroups_path: str | None, container_id: str, systemd: bool = False,
                annotations: dict | None = None, rootless: bool = False) -> Manager:  # fmt: skip
    """The manager of a new container's cgroup. Reads /proc/self/mountinfo (and, for a
    relative path, /proc/self/cgroup); creates and writes nothing. systemd: the unit of
    --systemd-cgroup, with the config's annotations (org.systemd.property.*)."""
    if systemd:
        from ocirun.cgroups import systemd as systemd_driver

        return systemd_driver.manager_for(cgroups_path, container_id, annotations or {})
    if cgroups_path and not cgroups_path.startswith("/") and cgroups_path.count(":") == 2:
        raise CgroupError(
            f"cgroupsPath {cgroups_path!r} is in the systemd form slice:prefix:name, "
            "which needs --systemd-cgroup: give a cgroupfs path like /parent/name without it"
        )
    inner = clean_path(cgroups_path or container_id)
    if inner in ("/", "."):
        raise CgroupError(
            f"cgroupsPath {cgroups_path!r} names a hierarchy root or ocirun's own cgroup"
        )
    host = detect.host()
    absolute = inner.startswith("/")
    own = {} if absolute else detect.own_cgroups()
    if host.mode == "unified":
        from ocirun.cgroups.v2 import V2Manager

        hierarchy = host.v2
        path = (
            inner if absolute else _below(hierarchy, os.path.dirname(_own(own, hierarchy)), inner)
        )
        if rootless and not cgroups_path and not _may_use(hierarchy.mountpoint, path):
            return _no_cgroup(host, own)
        manager: Manager = V2Manager(hierarchy.mountpoint, path)
        manager.rootless = rootless
        return manager
    paths = {}
    for hierarchy in host.v1:
        paths[hierarchy.name] = (
            inner if absolute else _below(hierarchy, _own(own, hierarchy), inner)
        )
    if host.v2:
        paths[host.v2.name] = inner if absolute else "/" + inner
    if rootless and not cgroups_path:
        hierarchies = [*host.v1, host.v2] if host.v2 else host.v1
        if not all(_may_use(h.mountpoint, paths[h.name]) for h in hierarchies):
            return _no_cgroup(host, own)
    manager = _v1(host, paths)
    manager.rootless = rootless
    return manager


def open_existing(path: str) -> Manager:
    """The manager of an existing container's cgroup, from mgr.path as stored at create."""
    if not path:
        from ocirun.cgroups.absent import NoCgroup

        return NoCgroup()
    host = detect.host()
    common, _, rest = path.partition(";")
    items = dict(item.split("=", 1) for item in rest.split(";") if item)
    parents = int(items.pop("parents", 0))
    unit = items.pop("unit", "")  # a --systemd-cgroup container's unit
    if host.mode == "unified":
        from ocirun.cgroups.v2 import V2Manager

        manager: Manager = V2Manager(host.v2.mountpoint, common)
    else:
        hierarchies = [*host.v1, host.v2] if host.v2 else host.v1
        manager = _v1(host, {h.name: items.get(h.name, common) for h in hierarchies})
    manager.parents = parents
    if unit:
        from ocirun.cgroups.systemd import SystemdManager

        return SystemdManager(manager, unit, host.mode == "unified")
    return manager


def clean_path(path: str) -> str:
    """runc's utils.CleanPath: lexical cleaning; a relative path stays below its base."""
    if not path:
        return ""
    if path.startswith("/"):
        return os.path.normpath("/" + path.lstrip("/"))
    return os.path.relpath(os.path.normpath("/" + path), "/")


def _own(own: dict[frozenset[str], str], hierarchy: detect.Hierarchy) -> str:
    try:
        return own[hierarchy.controllers]
    except KeyError:
        raise CgroupError(
            f"/proc/self/cgroup has no line for the hierarchy at {hierarchy.mountpoint}"
        ) from None


def _below(hierarchy: detect.Hierarchy, own: str, inner: str) -> str:
    """inner joined below the runtime's own cgroup, as a path from the hierarchy's mount point
    (inside a container the mount shows a subtree: own paths start with its root)."""
    full = os.path.normpath("/" + f"{own}/{inner}".lstrip("/"))  # normpath keeps a leading //
    root = hierarchy.root
    if root != "/" and (full == root or full.startswith(root + "/")):
        full = full[len(root) :] or "/"
    return full


def _may_use(mountpoint: str, path: str) -> bool:
    """Whether this process may make the cgroup at path below mountpoint (or, where it is
    there already, move itself into it): the kernel's own access check, before trying."""
    directory = mountpoint + path if path != "/" else mountpoint
    if os.path.isdir(directory):
        return os.access(directory + "/cgroup.procs", os.W_OK, effective_ids=True)
    while directory != mountpoint and not os.path.isdir(directory):
        directory = os.path.dirname(directory)
    return os.access(directory, os.W_OK | os.X_OK, effective_ids=True)


def _no_cgroup(host: detect.Host, own: dict[frozenset[str], str]) -> Manager:
    """No cgroup of its own: the container stays in ours, which its cgroup mounts show."""
    from ocirun.cgroups.absent import NoCgroup

    hierarchies = [*host.v1, host.v2] if host.v2 else host.v1
    if host.mode == "unified":
        sources = [("", _join(host.v2.mountpoint, _below(host.v2, _own(own, host.v2), ".")),
                    "cgroup2")]  # fmt: skip
    else:
        sources = [(h.name, _join(h.mountpoint, _below(h, _own(own, h), ".")),
                    "cgroup" if h.version == 1 else "cgroup2") for h in hierarchies]  # fmt: skip
    return NoCgroup(sources)


def _join(mountpoint: str, path: str) -> str:
    return mountpoint if path == "/" else mountpoint + path


def _v1(host: detect.Host, paths: dict[str, str]) -> Manager:
    from ocirun.cgroups.v1 import V1Manager

    counts: dict[str, int] = {}
    for value in paths.values():
        counts[value] = counts.get(value, 0) + 1
    common = max(counts, key=counts.__getitem__)
    exceptions = [f"{name}={value}" for name, value in paths.items() if value != common]
    return V1Manager(host, paths, ";".join([common, *exceptions]))
