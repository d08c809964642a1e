"""What `create` hands to the processes it forks: the Plan, and the fork of stage 1.

Stage 1 loads the init's own modules (ocirun.init and what it needs: ctypes, the rootfs and
namespace code; ~5 ms here) after the fork, while the parent makes the cgroup on the other
CPU; it starts on the rest once the parent says the cgroup is there.
"""

import gc
import os

from ocirun.channel import Channel, run_child


class Plan:
    """Everything the forked stages need, prepared by the parent before forking."""

    def __init__(self, config: dict, bundle: str, rootfs: str, state_dir_fd: int,
                 no_pivot: bool, preserve_fds: int, console_fd: int = -1,
                 cgroup_sources=None, hook_state=None, lock_fd: int = -1,
                 new_keyring: bool = True, cgroup=None) -> None:  # fmt: skip
        self.config = config
        self.linux = config.get("linux", {})
        self.process = config["process"]
        self.bundle = bundle
        self.rootfs = rootfs
        self.state_dir_fd = state_dir_fd
        self.no_pivot = no_pivot
        self.preserve_fds = preserve_fds
        self.console_fd = console_fd
        self.cgroup_sources = cgroup_sources or []
        self.cgroup = cgroup  # its Manager; stage 1 opens cgroup_entry, the init's way in
        self.cgroup_entry = None
        self.hook_state = hook_state or {}
        self.idmap_trees: dict[int, int] = {}  # mount index -> detached idmapped tree (stage 1)
        self.umask = os.umask(0)  # the caller's, kept when process.user.umask is not given
        os.umask(self.umask)
        self.new_keyring = new_keyring  # a session keyring of its own (runc's "_ses.<id>")
        self.lock_fd = lock_fd  # the parent's lock on the state dir: the children must not hold it
        self.namespaces = {ns["type"]: ns.get("path") for ns in self.linux.get("namespaces", [])}


def fork_stage1(plan: Plan, channel: Channel) -> int:
    """Fork stage 1 and return its pid (in the parent)."""
    gc.freeze()  # keep the children from dirtying (and being charged for) the parent's objects
    pid = os.fork()
    if pid:
        return pid
    gc.disable()
    if plan.lock_fd >= 0:
        os.close(plan.lock_fd)
    channel = channel.as_child()
    run_child(channel, _stage1, plan, channel)


def _stage1(plan: Plan, channel: Channel) -> None:
    from ocirun.init import stage1

    stage1(plan, channel)
