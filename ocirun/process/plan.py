"""What the forked stages of `create` need, prepared by the parent before it forks."""

import os

from ocirun.config import Config


class Plan:
    """Everything the forked stages need, prepared by the parent before forking."""

    def __init__(self, spec: Config, bundle: str, rootfs: str, state_dir_fd: int,
                 no_pivot: bool, preserve_fds: int, console_fd: int = -1,
                 cgroup_sources=None, hook_state=None, lock_fd: int = -1,
                 new_keyring: bool = True, cgroup_entry=None) -> None:  # fmt: skip
        self.spec = spec
        self.config = spec.data  # the dict, for hooks and Rootfs
        self.linux = spec.linux
        self.process = spec.process
        self.namespaces = spec.namespaces
        self.bundle = bundle
        self.rootfs = rootfs
        self.state_dir_fd = state_dir_fd
        self.no_pivot = no_pivot
        self.preserve_fds = preserve_fds
        self.console_fd = console_fd
        self.cgroup_sources = cgroup_sources or []
        self.cgroup_entry = cgroup_entry  # cgroups.Entry: the init joins its cgroup by itself
        self.hook_state = hook_state or {}
        self.idmap_trees: dict[int, int] = {}  # mount index -> detached idmapped tree (stage 1)
        self.umask = os.umask(0)  # the caller's, kept when process.user.umask is not given
        os.umask(self.umask)
        self.new_keyring = new_keyring  # a session keyring of its own (runc's "_ses.<id>")
        self.lock_fd = lock_fd  # the parent's lock on the state dir: the children must not hold it
