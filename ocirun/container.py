"""The lifecycle's operations, one function each, for the command line and any other caller:
create, run, start, kill, pause, resume, update, exec_process, delete.

They lock the container where runc does, check its status and call on the process stages
(ocirun/process/), the cgroup driver (ocirun/cgroups/) and the teardown (ocirun/teardown.py).
`state`, `start` and `kill` import this module: what only other operations need is imported
inside them.
"""

import posix  # not os (stat, posixpath, ...): start and kill load nothing they do not use

from ocirun.errors import InvalidState, OcirunError, SetupError
from ocirun.state import (
    CREATED,
    PAUSED,
    PROGRESS_FILE,
    RUNNING,
    STATE_FILE,
    STOPPED,
    Container,
    Lock,
    check_id,
    exists,
    join,
    locked,
    proc_stat,
)  # fmt: skip


def create(root: str, container_id: str, opts, keep_lock: bool = False):
    """Build the container up to where only `start` is missing (process/builder.py); with
    keep_lock, return (container, its lock) for a start that follows at once (`run`)."""
    from ocirun.process.builder import create as build

    return build(root, container_id, opts, keep_lock)


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

    fd = posix.open(container.exec_fifo, posix.O_RDONLY | posix.O_NONBLOCK | posix.O_CLOEXEC)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        data = b""
        while True:
            if poller.poll(50):
                chunk = posix.read(fd, 4096)
                if not chunk:
                    break
                data += chunk
                if data.startswith(b"seccomp "):  # the init's filter has a listener for an agent
                    from ocirun.seccomp_agent import pass_on_from_init

                    data = pass_on_from_init(container, data)
                    break
            elif not container.init_alive():
                raise SetupError("container init exited before start")
    finally:
        posix.close(fd)
    posix.unlink(container.exec_fifo)
    if data != b"0":
        destroy(container, CREATED)  # a failed startContainer hook: on to step 12 of the lifecycle
        raise SetupError(data.decode(errors="replace").removeprefix("error "))


def _poststart(container: Container) -> None:
    if not (container.config.get("hooks") or {}).get("poststart"):
        return
    from ocirun import hooks

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
        posix.kill(pid, signal)
    except ProcessLookupError:
        pass


def pause(root: str, container_id: str) -> None:
    """Freeze every process of the container (its cgroup's freezer)."""
    lock, container = locked(root, container_id)
    with lock:
        status = container.status()
        if status not in (RUNNING, CREATED):  # runc pauses created containers too
            raise InvalidState(f"container not running: {container_id} is {status}")
        container.cgroup().freeze()


def resume(root: str, container_id: str) -> None:
    lock, container = locked(root, container_id)
    with lock:
        status = container.status()
        if status != PAUSED:
            raise InvalidState(f"container not paused: {container_id} is {status}")
        container.cgroup().thaw()


def update(root: str, container_id: str, resources: dict) -> None:
    """Change the cgroup's limits, and the stored config with them (as runc does)."""
    from ocirun.resources import merge

    lock, container = locked(root, container_id)
    with lock:
        if container.status() == STOPPED:
            raise InvalidState(f"container not running: {container_id}")
        container.cgroup().update(resources)
        merge(container.config.setdefault("linux", {}).setdefault("resources", {}), resources)
        container.save()


def exec_process(container: Container, process: dict, console_socket: str | None,
                 detach: bool, pid_file: str | None, preserve_fds: int,
                 ignore_paused: bool = False, sub_cgroups: dict | None = None) -> int:  # fmt: skip
    """Start process in the running container (process/exec.py). Detached: 0 once it has
    called execve; else wait for it (a terminal without console socket through a pty proxy)
    and return its exit status."""
    from ocirun import syscalls as sc
    from ocirun.process import exec as process_exec
    from ocirun.process.foreground import Forwarder, wait_with_terminal

    proxy = console_fd = None
    if process.get("terminal"):
        from ocirun import terminal

        if console_socket or detach:
            console_fd = terminal.connect(console_socket)
        else:
            proxy = terminal.Proxy()
            console_fd = terminal.connect(proxy.path)
    if not detach:
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)  # the process re-parents to us
    opts = process_exec.ExecOptions(-1 if console_fd is None else console_fd, pid_file,
                                    preserve_fds, ignore_paused, sub_cgroups)  # fmt: skip
    forwarder = None if detach else Forwarder(forward_winch=proxy is None)
    try:
        pid = process_exec.execute(container, process, opts)
        if proxy is not None:
            proxy.receive()
    except BaseException:
        if proxy is not None:
            proxy.finish()
        raise
    finally:
        if console_fd is not None:
            posix.close(console_fd)
    if forwarder is None:
        return 0
    return wait_with_terminal(pid, proxy, forwarder)


def run(root: str, container_id: str, opts, detach: bool = False, keep: bool = False) -> int:
    """create, then start. Detached: 0; else wait for the container's process (a terminal
    without console socket through a pty proxy), delete the container unless keep, and
    return the process's exit status."""
    from ocirun import syscalls as sc
    from ocirun.process.foreground import Forwarder, wait_with_terminal

    proxy = None
    if not opts.console_socket and not detach and _wants_terminal(opts.bundle):
        from ocirun.terminal import Proxy

        proxy = Proxy()  # a foreground terminal: we are the console socket's other end
        opts.console_socket = proxy.path
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)  # the init re-parents to us, so we can wait for it
    try:
        container, lock = create(root, container_id, opts, keep_lock=True)
    except BaseException:
        if proxy is not None:
            proxy.finish()
        raise
    forwarder = None if detach else Forwarder(forward_winch=proxy is None)
    try:
        if proxy is not None:
            proxy.receive()
        start_locked(container, lock)  # still create's lock: nothing to load again
    except BaseException:
        lock.release()
        if proxy is not None:
            proxy.finish()
        delete(root, container_id, force=True)
        raise
    if forwarder is None:
        return 0
    status = wait_with_terminal(container.pid, proxy, forwarder)
    if not keep:
        delete(root, container_id, force=True)
    return status


def _wants_terminal(bundle: str) -> bool:
    """Whether the bundle's config asks for a terminal (an unreadable config: create reports)."""
    from ocirun import config as cfg
    from ocirun.errors import ConfigError

    try:
        return bool(cfg.load(bundle).get("process", {}).get("terminal"))
    except ConfigError:
        return False


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
    """A create that was killed before it wrote state.json (under the lock, so never one still
    being created): undo what its progress record lists, then remove its state dir, without
    which the id could not be used again."""
    from ocirun.teardown import remove_state_dir

    state_dir = join(root, check_id(container_id))
    try:
        with Lock(state_dir):
            if exists(join(state_dir, STATE_FILE)):
                return
            _undo_progress(join(state_dir, PROGRESS_FILE))
            remove_state_dir(state_dir)
    except OcirunError:
        pass  # no such container at all


def _undo_progress(path: str) -> None:
    """Kill the init a killed create left (if it is still that process), every process in its
    cgroup, unmount its host mounts and remove the cgroup."""
    from ocirun import cgroups, jsonio
    from ocirun.teardown import destroy_cgroup, kill_and_wait, unmount_all

    try:
        progress = jsonio.load_file(path)
        pid, start_time = progress["pid"], progress["init_start_time"]
        cgroup_path, host_mounts = progress["cgroup_path"], progress["host_mounts"]
    except FileNotFoundError:
        return  # killed before it made anything
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise SetupError(f"{path}: cannot read the record of an unfinished create: {exc}") from None
    stat = proc_stat(pid) if pid else None
    if stat is not None and stat[1] == start_time:
        kill_and_wait(pid)
    try:
        cgroup = cgroups.open_existing(cgroup_path)
        for member in cgroup.pids():
            kill_and_wait(member)
    except (OcirunError, OSError):
        cgroup = None  # never made
    unmount_all(host_mounts)
    if cgroup is not None:
        destroy_cgroup(cgroup)


def destroy(container: Container, status: str) -> None:
    """Step 12 of the lifecycle: undo create; then the poststop hooks (step 13)."""
    from ocirun.teardown import destroy_cgroup, kill_and_wait, remove_state_dir, unmount_all

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
    from ocirun import hooks

    hooks.run_all_logged(container.config, "poststop", container.oci_state(STOPPED))
