"""What the suite observes on the host: mounts, cgroups, processes."""

from __future__ import annotations

import ctypes
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
MNT_DETACH = 2
LIBC = ctypes.CDLL(None, use_errno=True)


@dataclass
class Mount:
    mount_id: int
    parent_id: int
    root: str
    point: str
    options: list[str]
    optional: list[str]
    fstype: str
    source: str
    super_options: list[str]

    @property
    def propagation(self) -> str:
        tags = [tag.split(":")[0] for tag in self.optional]
        if "shared" in tags:
            return "shared"
        if "master" in tags:
            return "slave"
        if "unbindable" in tags:
            return "unbindable"
        return "private"


def unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        head, tail = left.split(), right.split()
        mounts.append(
            Mount(
                mount_id=int(head[0]),
                parent_id=int(head[1]),
                root=unescape(head[3]),
                point=unescape(head[4]),
                options=head[5].split(","),
                optional=head[6:],
                fstype=tail[0],
                source=unescape(tail[1]) if len(tail) > 1 else "",
                super_options=tail[2].split(",") if len(tail) > 2 else [],
            )
        )
    return mounts


def host_mounts() -> list[Mount]:
    return parse_mountinfo(Path("/proc/self/mountinfo").read_text())


def mounts_under(directory: Path) -> list[str]:
    prefix = str(directory).rstrip("/") + "/"
    points = [m.point for m in host_mounts()]
    return [p for p in points if p == prefix[:-1] or p.startswith(prefix)]


def unmount_all_under(directory: Path) -> None:
    """Detach every host mount at or below directory, deepest and newest first."""
    for _ in range(8):
        points = mounts_under(directory)
        if not points:
            return
        for point in reversed(points):
            LIBC.umount2(point.encode(), MNT_DETACH)


def become_subreaper() -> None:
    LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def exit_status(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def reap(pid: int) -> tuple[bool, int | None]:
    """Non-blocking: (exited, status); status is None when pid is not our child."""
    try:
        got, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return not alive(pid), None
    if got == 0:
        return False, None
    return True, exit_status(status)


def reap_orphans() -> None:
    """Collect zombies re-parented to us; call only while no subprocess is running."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return None


def kill_and_reap(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline:
        pids = {pid for pid in pids if not reap(pid)[0]}
        time.sleep(0.01)


def processes_rooted_under(directory: Path) -> set[int]:
    prefix = str(directory).rstrip("/") + "/"
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            root = os.readlink(entry / "root")
        except OSError:
            continue
        if (root + "/").startswith(prefix):
            found.add(int(entry.name))
    return found


@dataclass
class Hierarchy:
    mount: Path
    version: int
    controllers: set[str]


def cgroup_hierarchies() -> list[Hierarchy]:
    found = []
    for m in host_mounts():
        if m.fstype == "cgroup":
            names = {o for o in m.super_options if o not in ("rw", "ro")}
            found.append(Hierarchy(Path(m.point), 1, names))
        elif m.fstype == "cgroup2":
            controllers = Path(m.point, "cgroup.controllers")
            names = set(controllers.read_text().split()) if controllers.exists() else set()
            found.append(Hierarchy(Path(m.point), 2, names))
    return found


def controller_hierarchy(controller: str) -> Hierarchy | None:
    """Where the host runs a controller: its v1 hierarchy, else the v2 one if enabled there.

    `blkio/io` names a controller that is called differently on v1 and on v2."""
    v1_name, _, v2_name = controller.partition("/")
    hierarchies = cgroup_hierarchies()
    for h in hierarchies:
        if h.version == 1 and v1_name in h.controllers:
            return h
    for h in hierarchies:
        if h.version == 2 and (v2_name or v1_name) in h.controllers:
            return h
    return None


def process_cgroup(pid: int, hierarchy: Hierarchy) -> Path | None:
    """The directory of pid's cgroup in hierarchy, from /proc/PID/cgroup."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        number, names, path = line.split(":", 2)
        listed = set(names.split(",")) if names else set()
        if hierarchy.version == 2 and number == "0" and not names:
            return hierarchy.mount / path.lstrip("/")
        if hierarchy.version == 1 and listed & hierarchy.controllers:
            return hierarchy.mount / path.lstrip("/")
    return None


def cgroup_dirs(cgroups_path: str) -> list[Path]:
    """Every existing directory for an absolute cgroupsPath, across hierarchies."""
    relative = cgroups_path.lstrip("/")
    dirs = [h.mount / relative for h in cgroup_hierarchies()]
    return [d for d in dirs if d.is_dir()]


def cgroup_procs(directory: Path) -> set[int]:
    pids: set[int] = set()
    for procs in directory.rglob("cgroup.procs"):
        try:
            pids |= {int(p) for p in procs.read_text().split()}
        except OSError:
            continue
    return pids


def remove_cgroup_tree(directory: Path) -> bool:
    """rmdir a cgroup and its children, leaves first; True when it is gone."""
    if not directory.is_dir():
        return True
    children = sorted((d for d in directory.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts))
    for child in [*children, directory]:
        try:
            child.rmdir()
        except OSError:
            pass
    return not directory.exists()
