"""Walking a cgroup and everything below it: its processes, its removal, waiting on it."""

import errno
import os
import time

from ocirun.cgroups.common import read_path
from ocirun.errors import CgroupError

SIGKILL = 9  # signal.SIGKILL, without importing signal (it imports enum)


def tree_pids(directory: str) -> list[int]:
    """Every pid in cgroup.procs of directory and of all cgroups below it, sorted."""
    pids: set[int] = set()
    stack = [directory]
    while stack:
        current = stack.pop()
        try:
            pids.update(int(pid) for pid in read_path(current + "/cgroup.procs").split())
            stack.extend(e.path for e in os.scandir(current) if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:  # removed meanwhile
            continue
        except OSError as e:
            raise CgroupError(f"cannot list the processes of {current}: {e.strerror}") from None
    return sorted(pids)


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, SIGKILL)
        except ProcessLookupError:
            pass


def remove_tree(directory: str) -> None:
    """rmdir directory and every cgroup below it, deepest first. A cgroup whose last process
    has just been killed stays busy for a moment: retry EBUSY for about a second."""
    try:
        children = [e.path for e in os.scandir(directory) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return
    except OSError as e:
        raise CgroupError(f"cannot list {directory}: {e.strerror}") from None
    for child in children:
        remove_tree(child)
    delay = 0.001
    while True:
        try:
            os.rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or delay > 0.3:
                hint = " (processes still in it)" if e.errno == errno.EBUSY else ""
                raise CgroupError(f"cannot remove {directory}: {e.strerror}{hint}") from None
        time.sleep(delay)
        delay *= 2


def remove_parents(directory: str, levels: int) -> None:
    """rmdir up to levels parents of directory, stopping at the first one still in use."""
    for _ in range(levels):
        directory = os.path.dirname(directory)
        try:
            os.rmdir(directory)
        except FileNotFoundError:
            continue
        except OSError:  # other cgroups (or processes) in it: someone else's too
            return


def wait_for(check, what: str, timeout: float = 10.0) -> None:
    """Poll check() (1 ms, growing to 10 ms) until it is true; CgroupError after timeout."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while not check():
        if time.monotonic() > deadline:
            raise CgroupError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.01)
