"""Idmapped bind mounts: detached trees whose ids go through a user namespace's mappings.

They are made by stage 1 while it is still the host's root (setting MOUNT_ATTR_IDMAP needs
CAP_SYS_ADMIN over the filesystem): open_tree(OPEN_TREE_CLONE) of the source, mount_setattr with
the fd of a user namespace holding the mappings, and the detached tree's fd goes to the init,
which attaches it at the destination with move_mount.

In a container with a user namespace, stage 1 also clones the source of every other bind mount
(as runc opens them before it enters the namespace): the init, root of the user namespace, may
not be able to reach a source only the host's root may enter.
"""

import os

from ocirun import namespaces
from ocirun import syscalls as sc
from ocirun.config import Config
from ocirun.errors import ConfigError, SetupError
from ocirun.mountopts import MountOptions


def prepare(spec: Config, bundle: str) -> dict[int, int]:
    """{mount index: detached tree fd}: idmapped for every mount that asks for an idmap; with
    a user namespace, a plain clone of the source of every other bind mount."""
    in_userns = "user" in spec.namespaces
    trees: dict[int, int] = {}
    try:
        for i, entry in enumerate(spec.mounts):
            opts = MountOptions(entry.get("options", []))
            if opts.idmap or entry.get("uidMappings") or entry.get("gidMappings"):
                trees[i] = _tree(spec, bundle, entry, opts, i)
            elif in_userns and (opts.is_bind or entry.get("type") == "bind"):
                try:
                    trees[i] = _clone(bundle, entry, opts)
                except PermissionError:  # not the host's root (rootless): sources are its own
                    pass
                except OSError as exc:
                    where = f"mounts[{i}] ({entry['destination']})"
                    raise SetupError(f"{where}: {exc.strerror}") from None
    except BaseException:
        for fd in trees.values():
            os.close(fd)
        raise
    return trees


def _tree(spec: Config, bundle: str, entry: dict, opts: MountOptions, index: int) -> int:
    if not opts.is_bind and entry.get("type") != "bind":
        raise ConfigError(f"mounts[{index}]: idmapped mounts must be bind mounts")
    userns_fd = _userns_for(spec, entry, index)
    try:
        tree = _clone(bundle, entry, opts)
        try:
            flags = sc.AT_EMPTY_PATH | (sc.AT_RECURSIVE if opts.recursive_idmap else 0)
            sc.mount_setattr(tree, "", flags, sc.MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
        except BaseException:
            os.close(tree)
            raise
        return tree
    finally:
        os.close(userns_fd)


def _clone(bundle: str, entry: dict, opts: MountOptions) -> int:
    """A detached copy of a bind mount's source (its submounts too with rbind)."""
    source = os.path.join(bundle, entry.get("source") or "")
    recursive = sc.AT_RECURSIVE if opts.flags & sc.MS_REC else 0
    return sc.open_tree(-100, source, sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC | recursive)


def _userns_for(spec: Config, entry: dict, index: int) -> int:
    """A user namespace fd with the mount's mappings, else those of the container's userns."""
    uid_maps, gid_maps = entry.get("uidMappings"), entry.get("gidMappings")
    if bool(uid_maps) != bool(gid_maps):
        raise ConfigError(f"mounts[{index}]: uidMappings and gidMappings go together")
    if not uid_maps:
        if "user" not in spec.namespaces:
            raise ConfigError(
                f"mounts[{index}]: idmap without mappings needs the container's user namespace"
            )
        if spec.namespaces["user"]:
            return os.open(spec.namespaces["user"], os.O_RDONLY | os.O_CLOEXEC)
        uid_maps, gid_maps = spec.linux["uidMappings"], spec.linux["gidMappings"]
    return _new_userns(uid_maps, gid_maps)


def _new_userns(uid_maps: list[dict], gid_maps: list[dict]) -> int:
    """Fork a helper into a new user namespace, map it, keep an fd of that namespace."""
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    hold_r, hold_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(ready_r)
            os.close(hold_w)
            sc.unshare(namespaces.NAMESPACE_FLAGS["user"])
            os.write(ready_w, b"1")
            os.read(hold_r, 1)  # until the parent has the namespace's fd
            code = 0
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(hold_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise ConfigError("idmapped mount: cannot create a user namespace for the mappings")
        namespaces.write_mappings(pid, uid_maps, gid_maps)
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(hold_w)
        os.waitpid(pid, 0)
