"""Linux namespaces: joining existing ones by path, creating new ones, user and time mappings.

The order that works: the user namespace first and alone (its mappings are written from outside by
the parent), then joining the namespaces given by path, then unsharing the new ones. A new pid or
time namespace only applies to children, so the init is forked after the unshare.
"""

import os

from ocirun import procfs
from ocirun import syscalls as sc
from ocirun.errors import ConfigError, SetupError

# the clone(2) flag of each namespace type: the one table
NAMESPACE_FLAGS = {
    "pid": 0x20000000, "network": 0x40000000, "mount": 0x00020000, "ipc": 0x08000000,
    "uts": 0x04000000, "user": 0x10000000, "cgroup": 0x02000000, "time": 0x00000080,
}  # fmt: skip

# setns order for joined namespaces: user first, mount last (it changes how paths resolve)
_JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "time", "cgroup", "mount")
_NS_FILE = {"network": "net", "mount": "mnt", "pid": "pid", "ipc": "ipc", "uts": "uts",
            "user": "user", "cgroup": "cgroup", "time": "time"}  # fmt: skip


def open_paths(namespaces: dict[str, str | None]) -> dict[str, int]:
    """Open every namespace given by path (before any setns changes what paths mean)."""
    fds = {}
    for ns_type, path in namespaces.items():
        if path is None:
            continue
        try:
            fds[ns_type] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            for fd in fds.values():
                os.close(fd)
            raise ConfigError(f"linux.namespaces: {ns_type} path {path}: {exc.strerror}") from None
    return fds


def join(fds: dict[str, int], namespaces: dict[str, str | None], only: tuple[str, ...]) -> None:
    """setns into the opened namespaces whose type is in `only`, in a safe order."""
    for ns_type in _JOIN_ORDER:
        if ns_type in fds and ns_type in only:
            try:
                sc.setns(fds.pop(ns_type), NAMESPACE_FLAGS[ns_type])
            except OSError as exc:
                reason = "not a " + ns_type + " namespace" if exc.errno == 22 else exc.strerror
                raise SetupError(
                    f"linux.namespaces: cannot join {ns_type} namespace "
                    f"{namespaces[ns_type]}: {reason}"
                ) from None


def unshare_flags(namespaces: dict[str, str | None], exclude: tuple[str, ...]) -> int:
    flags = 0
    for ns_type, path in namespaces.items():
        if path is None and ns_type not in exclude:
            flags |= NAMESPACE_FLAGS[ns_type]
    return flags


def write_id_mappings(pid: int, linux: dict) -> None:
    """From the parent: the uid_map and gid_map of the child's new user namespace."""
    write_mappings(pid, linux["uidMappings"], linux["gidMappings"])


def write_mappings(pid: int, uid_maps: list[dict], gid_maps: list[dict]) -> None:
    """uid_map and gid_map of the user namespace process pid is in (written once, from outside).

    As runc does: written directly where the kernel lets us (root; a user mapping only its own
    ids), else through the setuid helpers newuidmap/newgidmap, which allow the ranges
    /etc/subuid and /etc/subgid give the user. A user who maps only its own gid must deny
    setgroups first (the kernel's rule); with newgidmap, setgroups stays allowed."""
    uid_text, gid_text = _format_mappings(uid_maps), _format_mappings(gid_maps)
    _write_map(pid, "uid", uid_text, uid_maps, "linux.uidMappings")
    if os.geteuid() != 0 and gid_maps == [{"containerID": 0, "hostID": os.getegid(), "size": 1}]:
        _write(f"/proc/{pid}/setgroups", "deny")
    _write_map(pid, "gid", gid_text, gid_maps, "linux.gidMappings")


def _write_map(pid: int, kind: str, text: str, mappings: list[dict], field: str) -> None:
    path = f"/proc/{pid}/{kind}_map"
    try:
        procfs.write(f"{pid}/{kind}_map", text)
        return
    except PermissionError:
        pass
    except OSError as exc:
        raise SetupError(f"{field}: cannot write {path}: {exc.strerror}") from None
    _map_with_helper(pid, kind, mappings, field)


def _map_with_helper(pid: int, kind: str, mappings: list[dict], field: str) -> None:
    """newuidmap/newgidmap PID CONTAINER-ID HOST-ID SIZE...; its complaint names the field."""
    import shutil
    import subprocess

    tool = f"new{kind}map"
    program = shutil.which(tool)
    own = os.getuid() if kind == "uid" else os.getgid()
    if program is None:
        raise SetupError(
            f"{field}: mapping ids other than your own {kind} {own} needs {tool} "
            "(Debian package uidmap) and ranges in /etc/sub{kind}"
        )
    args = [str(n) for m in mappings for n in (m["containerID"], m["hostID"], m["size"])]
    result = subprocess.run([program, str(pid), *args], capture_output=True)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).decode(errors="replace").strip()
        raise SetupError(
            f"{field}: {tool} refused the mapping (your {kind} is {own}; only it and your "
            f"ranges in /etc/sub{kind} may be mapped): {detail}"
        )


def host_id(mappings: list[dict], container_id: int) -> int:
    """The host id that container_id maps to (itself when unmapped or joined by path)."""
    for m in mappings:
        if m["containerID"] <= container_id < m["containerID"] + m["size"]:
            return m["hostID"] + container_id - m["containerID"]
    return container_id


def _format_mappings(mappings: list[dict]) -> str:
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)


def write_time_offsets(offsets: dict) -> None:
    """Offsets of a new time namespace, written before its first process is forked into it."""
    lines = "".join(
        f"{clock} {value.get('secs', 0)} {value.get('nanosecs', 0)}\n"
        for clock, value in offsets.items()
    )
    _write("/proc/self/timens_offsets", lines)


def _write(path: str, text: str) -> None:
    try:
        procfs.write(path.removeprefix("/proc/"), text)
    except OSError as exc:
        raise SetupError(f"cannot write {path}: {exc.strerror}") from None


def join_all_of(pid: int) -> None:
    """setns into each namespace of process pid that differs from ours (`exec`), in order."""
    fds = []
    for ns_type in _JOIN_ORDER:
        path = f"/proc/{pid}/ns/{_NS_FILE[ns_type]}"
        try:
            theirs = os.stat(path)
        except FileNotFoundError:  # a namespace type this kernel lacks
            continue
        ours = os.stat(f"/proc/self/ns/{_NS_FILE[ns_type]}")
        if (theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino):
            fds.append((ns_type, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
    for ns_type, fd in fds:
        try:
            sc.setns(fd, NAMESPACE_FLAGS[ns_type])
        except OSError as exc:
            raise SetupError(
                f"cannot join the container's {ns_type} namespace: {exc.strerror}"
            ) from None
        finally:
            os.close(fd)
