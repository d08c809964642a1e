"""What both drivers and their controllers share: file access and the warning helper.

Everything here uses os.open/os.read/os.write on purpose: this runs on every `ocirun create`,
and the buffered io layer, `re` or `typing` would each cost more than the writes themselves.
"""

import errno
import os

from ocirun.errors import CgroupError

UINT64_MAX = (1 << 64) - 1


def warn(message: str) -> None:
    """The one exit for cgroup warnings: ocirun's log (the --log file, else stderr)."""
    from ocirun.log import log

    log.warning(message)


def read_path(path: str) -> str:
    """The whole file; raises OSError. Cgroup files are seq_files: read until end of file."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode()


def read(directory: str, name: str) -> str:
    path = f"{directory}/{name}"
    try:
        return read_path(path)
    except OSError as e:
        raise CgroupError(f"cannot read {path}: {e.strerror}") from None


def read_optional(directory: str, name: str) -> str | None:
    """The file's text, or None when the kernel does not provide it."""
    path = f"{directory}/{name}"
    try:
        return read_path(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CgroupError(f"cannot read {path}: {e.strerror}") from None


def open_file(path: str, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_CLOEXEC)
    except OSError as e:
        raise CgroupError(f"cannot open {path}: {e.strerror}") from None


def write_errno(directory: str, name: str, value: str) -> int:
    """Write value in one write(2); 0 or the errno, for the callers that retry on some errors."""
    try:
        fd = os.open(f"{directory}/{name}", os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as e:
        return e.errno or errno.EIO
    try:
        os.write(fd, value.encode())
    except OSError as e:
        return e.errno or errno.EIO
    finally:
        os.close(fd)
    return 0


def write_error(directory: str, name: str, value: str, err: int) -> CgroupError:
    message = f"cannot write {value!r} to {directory}/{name}: {os.strerror(err)}"
    if err == errno.ENOENT:
        exists = os.path.isdir(directory)
        message += " (this kernel does not provide that file)" if exists else " (no such cgroup)"
    return CgroupError(message)


def write(directory: str, name: str, value: str) -> None:
    if err := write_errno(directory, name, value):
        raise write_error(directory, name, value, err)


def mkdirs(directory: str, root: str) -> int:
    """mkdir directory and its missing parents below root; how many levels were made."""
    try:
        os.mkdir(directory, 0o755)
        return 1
    except FileExistsError:
        return 0
    except FileNotFoundError:
        parent = os.path.dirname(directory)
        if len(parent) <= len(root):
            raise CgroupError(f"cannot create {directory}: {root} does not exist") from None
    except OSError as e:
        raise CgroupError(f"cannot create {directory}: {e.strerror}") from None
    made = mkdirs(parent, root)
    try:
        os.mkdir(directory, 0o755)
    except FileExistsError:  # made meanwhile by someone else
        return made
    except OSError as e:
        raise CgroupError(f"cannot create {directory}: {e.strerror}") from None
    return made + 1


def parse_uint(text: str) -> int:
    """A cgroup number; "max" is UINT64_MAX (runc's GetCgroupParamUint)."""
    text = text.strip()
    return UINT64_MAX if text == "max" else int(text)


def key_values(text: str) -> dict[str, int]:
    """`key value` lines (memory.stat, cpu.stat, pids.events...)."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value:
            out[key] = parse_uint(value)
    return out


def num(value: int) -> str:
    """A limit as cgroup v2 writes it: -1 is "max"."""
    return "max" if value == -1 else str(value)


def asks(section: object) -> bool:
    """Whether a resources section sets anything at all (null, [] and {} set nothing)."""
    if isinstance(section, dict):
        return any(asks(v) for v in section.values())
    if isinstance(section, list):
        return bool(section)
    return section is not None
