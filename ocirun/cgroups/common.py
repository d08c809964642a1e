"""What both drivers and their controllers share: file access and the warning helper.

Everything here uses posix.open/read/write on purpose: this runs on every `ocirun create`, and
the buffered io layer, `re` or `typing` would each cost more than the writes themselves (and
`state` reads the freezer through here, where importing os would cost more than the rest).
"""

import posix

from ocirun.errors import CgroupError

UINT64_MAX = (1 << 64) - 1
ENOENT, EIO = 2, 5  # Linux's errno values: the errno module would be one more import for `state`


def warn(message: str) -> None:
    """The one exit for cgroup warnings: ocirun's log (the --log file, else stderr)."""
    from ocirun.log import log

    log.warning(message)


def read_path(path: str) -> str:
    """The whole file; raises OSError. Cgroup files are seq_files: read until end of file."""
    fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    try:
        chunks = []
        while chunk := posix.read(fd, 65536):
            chunks.append(chunk)
    finally:
        posix.close(fd)
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
        return posix.open(path, flags | posix.O_CLOEXEC)
    except OSError as e:
        raise CgroupError(f"cannot open {path}: {e.strerror}") from None


def write_errno(directory: str, name: str, value: str) -> int:
    """Write value in one write(2); 0 or the errno, for the callers that retry on some errors."""
    try:
        fd = posix.open(f"{directory}/{name}", posix.O_WRONLY | posix.O_TRUNC | posix.O_CLOEXEC)
    except OSError as e:
        return e.errno or EIO
    try:
        posix.write(fd, value.encode())
    except OSError as e:
        return e.errno or EIO
    finally:
        posix.close(fd)
    return 0


def is_dir(path: str) -> bool:
    try:
        return posix.stat(path).st_mode & 0o170000 == 0o040000
    except OSError:
        return False


def write_error(directory: str, name: str, value: str, err: int) -> CgroupError:
    message = f"cannot write {value!r} to {directory}/{name}: {posix.strerror(err)}"
    if err == ENOENT:
        exists = is_dir(directory)
        message += " (this kernel does not provide that file)" if exists else " (no such cgroup)"
    return CgroupError(message)


def write(directory: str, name: str, value: str) -> None:
    if err := write_errno(directory, name, value):
        raise write_error(directory, name, value, err)


def mkdirs(directory: str, root: str) -> int:
    """mkdir directory and its missing parents below root; how many levels were made."""
    try:
        posix.mkdir(directory, 0o755)
        return 1
    except FileExistsError:
        return 0
    except FileNotFoundError:
        parent = directory.rpartition("/")[0]
        if len(parent) <= len(root):
            raise CgroupError(f"cannot create {directory}: {root} does not exist") from None
    except OSError as e:
        raise CgroupError(f"cannot create {directory}: {e.strerror}") from None
    made = mkdirs(parent, root)
    try:
        posix.mkdir(directory, 0o755)
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
