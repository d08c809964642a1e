"""The container lifecycle after create: start, kill, delete, and the undoing of create."""

import os
import time

from ocirun import hooks
from ocirun.errors import InvalidState, OcirunError, SetupError
from ocirun.log import log
from ocirun.state import (
    CREATED,
    PAUSED,
    RUNNING,
    STATE_FILE,
    STOPPED,
    Container,
    Lock,
    check_id,
    locked,
    proc_stat,
)  # fmt: skip


def kill_and_wait(pid: int, timeout: float = 10.0) -> None:
    """SIGKILL a process we may not be the parent of, and wait until it is dead."""
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)
        return
    except ChildProcessError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stat = proc_stat(pid)
        if stat is None or stat[0] in "ZX":
            return
        time.sleep(0.002)


def unmount_all(mounts: list[str]) -> None:
    if not mounts:
        return
    from ocirun import syscalls as sc

    for path in reversed(mounts):
        try:
            sc.umount(path, sc.MNT_DETACH)
        except OSError as exc:
            if exc.errno not in (2, 22):  # gone already, or not a mount point any more
                log.warning(f"cannot unmount {path}: {exc.strerror}")


def destroy_cgroup(cgroup) -> None:
    try:
        cgroup.destroy()
    except OcirunError as exc:
        log.warning(str(exc))


def remove_state_dir(state_dir: str) -> None:
    """The state dir holds only our own files (never mounts): remove them, then the dir."""
    for name in os.listdir(state_dir):
        os.unlink(os.path.join(state_dir, name))
    os.rmdir(state_dir)


def start(root: str, container_id: str) -> Container:
    lock, container = locked(root, container_id)
    start_locked(container, lock)
    return container


def start_locked(container: Container, lock: Lock) -> None:
    """start, for a caller holding the container's lock (`run`, straight from create), which
    this releases before the poststart hooks."""
    with lock:
        status = container.status()
        if status != CREATED:
            raise InvalidState(f"cannot start a container that is {status}: {container.id}")
        _release_init(container)
    _poststart(container)


def _release_init(container: Container) -> None:
    """Open the exec fifo for reading: the init, blocked opening it for writing, goes on."""
    import select

    fd = os.open(container.exec_fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        data = b""
        while True:
            if poller.poll(50):
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                data += chunk
            elif not container.init_alive():
                raise SetupError("container init exited before start")
    finally:
        os.close(fd)
    os.unlink(container.exec_fifo)
    if data != b"0":
        destroy(container, CREATED)  # a failed startContainer hook: on to step 12 of the lifecycle
        raise SetupError(data.decode(errors="replace").removeprefix("error "))


def _poststart(container: Container) -> None:
    if not hooks.has(container.config, "poststart"):
        return
    try:
        hooks.run(container.config, "poststart", container.oci_state(RUNNING))
    except OcirunError:
        destroy(container, RUNNING)  # a failed poststart hook: on to step 12 of the lifecycle
        raise


def kill(root: str, container_id: str, signal: int, all_processes: bool = False) -> None:
    container = Container.load(root, container_id)
    status = container.status()
    if status not in (CREATED, RUNNING, PAUSED) and not all_processes:
        raise InvalidState(f"container not running: {container_id}")
    if all_processes:
        pids = container.cgroup().pids()
        for pid in pids:
            _signal(pid, signal)
        if status == PAUSED and signal == 9:
            container.cgroup().thaw()
        return
    _signal(container.pid, signal)


def _signal(pid: int, signal: int) -> None:
    try:
        os.kill(pid, signal)
    except ProcessLookupError:
        pass


def delete(root: str, container_id: str, force: bool = False) -> None:
    try:
        lock, container = locked(root, container_id)
    except OcirunError:
        if force:
            _remove_unfinished(root, container_id)
            return
        raise
    with lock:
        status = container.status()
        if status in (RUNNING, PAUSED) and not force:
            raise InvalidState(
                f"cannot delete container {container_id} that is not stopped: {status}"
            )
        destroy(container, status)


def _remove_unfinished(root: str, container_id: str) -> None:
    """The state dir of a create that was killed before it wrote state.json (under the lock,
    so never one still being created): without it the id could not be used again."""
    state_dir = os.path.join(root, check_id(container_id))
    try:
        with Lock(state_dir):
            if not os.path.exists(os.path.join(state_dir, STATE_FILE)):
                remove_state_dir(state_dir)
    except OcirunError:
        pass  # no such container at all


def destroy(container: Container, status: str) -> None:
    """Step 12 of the lifecycle: undo create; then the poststop hooks (step 13)."""
    cgroup = container.cgroup()
    if status != STOPPED:
        if status == PAUSED:
            cgroup.thaw()
        kill_and_wait(container.pid)
    for pid in cgroup.pids() if cgroup.location else ():  # (rootless: none of its own)
        kill_and_wait(pid)
    unmount_all(container.data.get("host_mounts", []))
    destroy_cgroup(cgroup)
    remove_state_dir(container.dir)
    hooks.run_all_logged(container.config, "poststop", container.oci_state(STOPPED))
