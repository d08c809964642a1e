"""The container's filesystem: the rootfs bind, the config's mounts, pivot_root, masked paths.

Order, as runc does it: make / a slave (or rootfsPropagation), bind the rootfs onto itself, mount
the entries in config order, create /dev, then (after the hooks) pivot_root into the rootfs
(chroot with --no-pivot or without a mount namespace), mask and read-only paths, and finally
remount the root read-only when asked.
"""

import os
import stat

from ocirun import copyup, devices, paths
from ocirun import syscalls as sc
from ocirun.errors import SetupError
from ocirun.mountopts import MountOptions

_LOCKED_FLAGS = sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
_ATIME_FLAGS = sc.MS_NOATIME | sc.MS_NODIRATIME | sc.MS_RELATIME | sc.MS_STRICTATIME


class Rootfs:
    """The rootfs being assembled, and what mounting into it needs to know."""

    def __init__(self, config: dict, bundle: str, rootfs: str, new_mountns: bool,
                 in_userns: bool, on_host_mount=None, idmap_trees=None) -> None:  # fmt: skip
        self.config = config
        self.bundle = bundle
        self.path = rootfs
        self.new_mountns = new_mountns
        self.in_userns = in_userns
        self.on_host_mount = on_host_mount  # called with each mount made in the host namespace
        self.root_fd = -1
        self.new_cgroupns = False  # set by the init once it has unshared a cgroup namespace
        # mount index -> detached tree to attach (idmapped, or a bind source stage 1 cloned)
        self.idmap_trees = idmap_trees or {}
        self.readonly_dev: tuple[int, str | None] | None = None  # a /dev to make read-only last

    def prepare(self) -> None:
        """Isolate mount propagation and make the rootfs a mount point of its own."""
        if self.new_mountns:
            propagation = self.config.get("linux", {}).get("rootfsPropagation")
            flag = _propagation_flag(propagation) if propagation else sc.MS_SLAVE | sc.MS_REC
            if flag & sc.MS_UNBINDABLE:  # applied after pivot_root: the rootfs must be bound first
                flag = sc.MS_PRIVATE | (flag & sc.MS_REC)
            sc.mount(None, "/", None, flag)
            _unshare_rootfs_mount(self.path, sc.MS_SLAVE if flag & sc.MS_SLAVE else sc.MS_PRIVATE)
            sc.mount(self.path, self.path, None, sc.MS_BIND | sc.MS_REC)
        self.root_fd = os.open(self.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def mount(self, entry: dict, index: int, cgroup_sources=None) -> None:
        """Mount one entry of config.mounts at its destination inside the rootfs."""
        where = f"mounts[{index}] ({entry['destination']})"
        try:
            self._mount(entry, index, cgroup_sources)
        except OSError as exc:
            raise SetupError(f"{where}: {exc.strerror or exc}") from None

    def _mount(self, entry: dict, index: int, cgroup_sources) -> None:
        opts = MountOptions(entry.get("options", []))
        fstype = entry.get("type") or ("bind" if opts.is_bind else None)
        dest = entry["destination"]
        if fstype == "cgroup" or fstype == "cgroup2":
            return self._mount_cgroup(dest, opts, cgroup_sources or [])
        source = entry.get("source")
        if opts.flags & sc.MS_REMOUNT:
            return self._remount_existing(dest, opts)
        is_bind = opts.is_bind or fstype == "bind"
        flags = opts.flags
        if is_bind:
            source = os.path.join(self.bundle, source or "")
            tree = self.idmap_trees.pop(index, -1)
            if tree >= 0:  # the source may be out of our reach: the tree says what it is
                target_fd = paths.mountpoint(self.root_fd, dest, paths.fd_is_dir(tree))
                sc.move_mount(tree, target_fd)
                os.close(tree)
            else:
                target_fd = paths.mountpoint(self.root_fd, dest, paths.is_dir(source))
                self._do_mount(source, target_fd, None, opts.flags | sc.MS_BIND, None)
        else:
            if fstype in ("proc", "sysfs"):
                _refuse_non_directory(self.root_fd, dest, fstype)
            target_fd = paths.mkdir_all(self.root_fd, dest)
            below = copyup.open_dir(target_fd) if opts.copy_up and fstype == "tmpfs" else -1
            if flags & sc.MS_RDONLY and (fstype == "tmpfs" or _is_dev(dest)):
                # as runc: read-write while /dev gets its nodes and mounts (read-only in
                # finalize) and a tmpfs its copy-up, read-only right after that
                flags &= ~sc.MS_RDONLY
                if _is_dev(dest):
                    self.readonly_dev = (flags | sc.MS_RDONLY, opts.data or None)
            self._do_mount(source or fstype, target_fd, fstype, flags, opts.data or None)
            if below >= 0:
                copyup.copy_up(below, dest, self.root_fd)
        os.close(target_fd)
        if not is_bind and flags != opts.flags and not _is_dev(dest):
            _remount_mounted(self.root_fd, dest, opts.flags, opts.data or None)
        self._after_mount(dest, opts, is_bind)

    def _remount_existing(self, dest: str, opts: MountOptions) -> None:
        """`remount`: change the flags (and data) of the mount already at the destination."""
        fd = paths.open_in_root(self.root_fd, dest)
        try:
            target = paths.fd_path(fd)
            try:
                sc.mount(None, target, None, opts.flags, opts.data or None)
            except PermissionError:  # flags locked in a user namespace: keep them
                locked = os.statvfs(target).f_flag & (_LOCKED_FLAGS | _ATIME_FLAGS)
                sc.mount(None, target, None, opts.flags | locked, opts.data or None)
        finally:
            os.close(fd)

    def _do_mount(self, source, target_fd: int, fstype, flags: int, data) -> None:
        target = paths.fd_path(target_fd)
        if self.on_host_mount and not self.new_mountns:  # announced before it is made
            self.on_host_mount(os.readlink(target))
        if fstype == "sysfs":
            try:
                sc.mount(source, target, fstype, flags, data)
            except PermissionError:  # sysfs of a netns we do not own: bind the host's instead
                sc.mount("/sys", target, None, sc.MS_BIND | sc.MS_REC)
        else:
            sc.mount(source, target, fstype, flags & ~sc.MS_REMOUNT, data)

    def _after_mount(self, dest: str, opts: MountOptions, is_bind: bool) -> None:
        """Remount a bind with its other flags, then propagation and recursive attributes."""
        fd = paths.open_in_root(self.root_fd, dest)
        try:
            target = paths.fd_path(fd)
            extra = opts.flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
            if is_bind and extra:
                _remount(target, sc.MS_BIND | extra)
            for flag in opts.propagation:
                sc.mount(None, target, None, flag)
            if opts.attr_set or opts.attr_clr:
                sc.mount_setattr(fd, "", sc.AT_EMPTY_PATH | sc.AT_RECURSIVE,
                                 opts.attr_set, opts.attr_clr)  # fmt: skip
        finally:
            os.close(fd)

    def _mount_cgroup(self, dest: str, opts: MountOptions, sources) -> None:
        """A cgroup mount shows the container's own cgroup: per-hierarchy mounts, or cgroup2.

        As runc 1.1 on a v1 or hybrid host: a read-write tmpfs holding one mount per v1
        hierarchy (fresh in a cgroup namespace, else a bind of our cgroup), without the hybrid
        host's unified hierarchy; each hierarchy takes the entry's flags (ro among them)."""
        flags = opts.flags | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
        target_fd = paths.mkdir_all(self.root_fd, dest)
        try:
            if len(sources) == 1 and sources[0][0] == "":
                self._mount_cgroup2(dest, sources[0][1], target_fd, flags)
                return
            self._do_mount("tmpfs", target_fd, "tmpfs", flags & ~sc.MS_RDONLY, "mode=755")
        finally:
            os.close(target_fd)
        for subdir, host_dir, fstype in sources:
            if fstype == "cgroup":
                self._mount_hierarchy(f"{dest}/{subdir}", subdir, host_dir, flags)

    def _mount_hierarchy(self, dest: str, name: str, host_dir: str, flags: int) -> None:
        """One v1 hierarchy at dest: mounted fresh in our cgroup namespace, else bound."""
        sub_fd = paths.mkdir_all(self.root_fd, dest)
        try:
            if self.new_cgroupns:
                data = "name=" + name if name == "systemd" else name
                try:
                    source = "systemd" if name == "systemd" else "cgroup"
                    self._do_mount(source, sub_fd, "cgroup", flags, data)
                    return
                except OSError:  # refused (a user namespace, a named hierarchy): bind instead
                    pass
            self._do_mount(host_dir, sub_fd, None, sc.MS_BIND | sc.MS_REC, None)
        finally:
            os.close(sub_fd)
        fd = paths.open_in_root(self.root_fd, dest)
        try:
            _remount(paths.fd_path(fd), sc.MS_BIND | flags)
        finally:
            os.close(fd)

    def _mount_cgroup2(self, dest: str, host_dir: str, target_fd: int, flags: int) -> None:
        try:
            self._do_mount("cgroup2", target_fd, "cgroup2", flags, None)
        except PermissionError:  # no cgroup namespace of our own: bind our cgroup from the host
            self._do_mount(host_dir, target_fd, None, sc.MS_BIND | sc.MS_REC, None)
            fd = paths.open_in_root(self.root_fd, dest)  # target_fd is the covered directory
            try:
                _remount(paths.fd_path(fd), sc.MS_BIND | flags)
            finally:
                os.close(fd)

    def setup_dev(self) -> None:
        """Default devices, config devices, /dev/ptmx and the /dev/fd, stdio links."""
        linux = self.config.get("linux", {})
        dev_is_bind = any(
            m["destination"].rstrip("/") == "/dev" and MountOptions(m.get("options", [])).is_bind
            for m in self.config.get("mounts", [])
        )
        defaults = [] if dev_is_bind else devices.DEFAULT_DEVICES
        for dev in defaults:
            devices.create(self.root_fd, dev, self.in_userns, self._device_mounted, strict=False)
        for dev in linux.get("devices", []):
            devices.create(self.root_fd, dev, self.in_userns, self._device_mounted)
        if not dev_is_bind:
            devices.create_links(self.root_fd)

    def _device_mounted(self, target: str) -> None:
        if self.on_host_mount and not self.new_mountns:
            self.on_host_mount(target)

    def enter(self, no_pivot: bool) -> None:
        """Make the rootfs the process's /: pivot_root, or chroot with --no-pivot."""
        os.chdir(self.path)
        if no_pivot or not self.new_mountns:
            if self.new_mountns:
                _hide_full_proc_and_sysfs(self.path)
                sc.mount(self.path, "/", None, sc.MS_MOVE)
            os.chroot(".")
        else:
            old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
            try:
                sc.pivot_root(".", ".")
                os.fchdir(old_root)
                sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
                sc.umount(".", sc.MNT_DETACH)
            finally:
                os.close(old_root)
        os.chdir("/")
        os.close(self.root_fd)
        self.root_fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def finalize(self) -> None:
        """After entering the rootfs: read-only and masked paths, root propagation, read-only /."""
        linux = self.config.get("linux", {})
        for path in linux.get("readonlyPaths", []):
            self._readonly_path(path)
        for path in linux.get("maskedPaths", []):
            self._mask_path(path)
        propagation = linux.get("rootfsPropagation")
        if propagation and self.new_mountns:
            sc.mount(None, "/", None, _propagation_flag(propagation))
        if self.readonly_dev:
            _remount_mounted(self.root_fd, "/dev", *self.readonly_dev)
        if self.config.get("root", {}).get("readonly"):
            _remount("/", sc.MS_BIND | sc.MS_RDONLY)
        os.close(self.root_fd)
        self.root_fd = -1

    def _readonly_path(self, path: str) -> None:
        try:
            fd = paths.open_in_root(self.root_fd, path)
        except FileNotFoundError:
            return
        try:
            target = paths.fd_path(fd)
            sc.mount(target, target, None, sc.MS_BIND | sc.MS_REC)
        finally:
            os.close(fd)
        fd = paths.open_in_root(self.root_fd, path)
        try:
            flags = sc.MS_BIND | sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
            _remount(paths.fd_path(fd), flags)
        finally:
            os.close(fd)

    def _mask_path(self, path: str) -> None:
        try:
            fd = paths.open_in_root(self.root_fd, path)
        except FileNotFoundError:
            return
        try:
            target = paths.fd_path(fd)
            if paths.is_dir(target):
                sc.mount("tmpfs", target, "tmpfs", sc.MS_RDONLY, None)
            else:
                null = self._verified_dev_null()
                try:
                    sc.mount(paths.fd_path(null), target, None, sc.MS_BIND)
                finally:
                    os.close(null)
        finally:
            os.close(fd)

    def _verified_dev_null(self) -> int:
        """An fd of the container's /dev/null, checked to be the null device (1:3) itself,
        not a symlink or another file put there: the mask is bound from this very fd
        (CVE-2025-31133)."""
        fd = paths.open_in_root(self.root_fd, "/dev/null", os.O_PATH | os.O_NOFOLLOW)
        st = os.fstat(fd)
        if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
            os.close(fd)
            raise SetupError(
                "maskedPaths: /dev/null is not the null device (1:3); refusing to mask with it"
            )
        return fd


def _hide_full_proc_and_sysfs(rootfs: str) -> None:
    """Before a chroot (--no-pivot): unmount, in our mount namespace, every whole proc and
    sysfs outside the rootfs (or cover it with a tmpfs). The host's stay reachable above the
    chroot otherwise, and with them in the namespace the kernel lets the container mount a
    new proc without the masked paths (as runc 1.1 does)."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            mountpoint = _unescape(fields[4])
            if fields[3] != "/" or fstype not in ("proc", "sysfs"):
                continue
            if mountpoint == rootfs or mountpoint.startswith(rootfs.rstrip("/") + "/"):
                continue
            found.append(mountpoint)
    for mountpoint in found:
        try:
            sc.mount(None, mountpoint, None, sc.MS_SLAVE | sc.MS_REC)  # no umount to the host
        except FileNotFoundError:
            continue  # below one unmounted already
        try:
            sc.umount(mountpoint, sc.MNT_DETACH)
        except OSError as exc:
            if exc.errno not in (1, 22):  # EPERM, EINVAL: locked, cover it instead
                raise
            sc.mount("tmpfs", mountpoint, "tmpfs", 0)


def _unescape(field: str) -> str:
    """A mountinfo path: spaces, tabs, newlines and backslashes come as octal escapes."""
    if "\\" not in field:
        return field
    return field.encode().decode("unicode_escape").encode("latin-1").decode(errors="replace")


def _remount_mounted(root_fd: int, dest: str, flags: int, data: str | None) -> None:
    """Remount what is mounted at dest with flags and data."""
    fd = paths.open_in_root(root_fd, dest)
    try:
        sc.mount(None, paths.fd_path(fd), None, flags | sc.MS_REMOUNT, data)
    finally:
        os.close(fd)


def _is_dev(dest: str) -> bool:
    return os.path.normpath("/" + dest.lstrip("/")) == "/dev"


def _refuse_non_directory(root_fd: int, dest: str, fstype: str) -> None:
    """proc and sysfs only on a real directory (or a missing one), never through a symlink:
    a rootfs could otherwise point them anywhere, as runc refuses too."""
    head, _, name = os.path.normpath("/" + dest.lstrip("/")).rpartition("/")
    try:
        parent = paths.open_in_root(root_fd, head or "/")
    except FileNotFoundError:
        return
    try:
        mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return
    finally:
        os.close(parent)
    if not stat.S_ISDIR(mode):
        raise SetupError(f'filesystem "{fstype}" must be mounted on ordinary directory')


def _remount(target: str, flags: int) -> None:
    """Remount keeping the flags the kernel locks (those of the source, inside a user namespace)."""
    try:
        sc.mount(None, target, None, flags | sc.MS_REMOUNT)
    except PermissionError:
        locked = os.statvfs(target).f_flag & (_LOCKED_FLAGS | _ATIME_FLAGS)
        sc.mount(None, target, None, flags | sc.MS_REMOUNT | locked)


def _propagation_flag(name: str) -> int:
    from ocirun.mountopts import PROPAGATION

    if name not in PROPAGATION:
        raise SetupError(f"linux.rootfsPropagation: unknown value {name!r}")
    return PROPAGATION[name]


def _unshare_rootfs_mount(path: str, flag: int) -> None:
    """pivot_root refuses a new root on a shared mount: make the mount holding it private/slave."""
    best, shared = "", False
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mountpoint = fields[4]
            inside = (path + "/").startswith(mountpoint.rstrip("/") + "/")
            if inside and len(mountpoint) >= len(best):
                best = mountpoint
                shared = any(field.startswith("shared:") for field in fields[6:])
    if shared:
        sc.mount(None, best, None, flag)
