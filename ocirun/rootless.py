"""Rootless mode: the rules runc 1.1 follows when it runs without the host's root.

- The state root: `$XDG_RUNTIME_DIR/ocirun` instead of /run/ocirun for a user other than root,
  and for root in a user namespace unless $USER is "root"; only when XDG_RUNTIME_DIR is set
  and not empty, and only when --root is not given (runc's shouldHonorXDGRuntimeDir).
  That directory is made (0700, sticky so that the XDG rules do not prune it) by every
  command; one that cannot be made is an error.
- Rootless cgroups (the global `--rootless auto|true|false`; auto: not root, or root in a user
  namespace): without a cgroupsPath, no cgroup where ocirun may not make one (see
  cgroups.placement).
- Not being root (whatever --rootless says) changes how user namespaces are set up: see
  namespaces.write_mappings.
"""

import os

from ocirun.errors import OcirunError, UsageError

_TRUE = ("1", "t", "T", "TRUE", "true", "True")  # Go's strconv.ParseBool, as runc parses it
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def in_user_namespace() -> bool:
    """Whether this process is in a user namespace below the host's (runc's RunningInUserNS):
    the host's has the one full mapping "0 0 4294967295"."""
    try:
        fd = os.open("/proc/self/uid_map", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fields = os.read(fd, 4096).split()
    finally:
        os.close(fd)
    return fields != [b"0", b"0", b"4294967295"]


def xdg_root() -> str | None:
    """The default state root from $XDG_RUNTIME_DIR, where runc 1.1 would use it; else None."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if not xdg:
        return None
    if os.geteuid() == 0:
        # the host's root keeps /run/ocirun even in a login session (XDG_RUNTIME_DIR=/run/user/0)
        if not in_user_namespace() or os.environ.get("USER") == "root":
            return None
    return xdg + "/ocirun"


def make_xdg_root(root: str) -> None:
    """Make the XDG state root as runc does, on every command: 0700, with the sticky bit."""
    try:
        os.makedirs(root, 0o700, exist_ok=True)
        os.chmod(root, 0o1700)
    except OSError as exc:
        raise OcirunError(
            f"the path in $XDG_RUNTIME_DIR must be writable by the user: {root}: {exc.strerror}"
        ) from None


def check_flag(value: str | None) -> None:
    """The global --rootless takes auto, or a boolean as Go spells it."""
    if value not in (None, "", "auto") and value not in _TRUE + _FALSE:
        raise UsageError(f"invalid value {value!r} for --rootless: auto, true or false")


def rootless_cgroups(value: str | None) -> bool:
    """What --rootless means (runc's shouldUseRootlessCgroupManager, cgroupfs driver)."""
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return os.geteuid() != 0 or in_user_namespace()
