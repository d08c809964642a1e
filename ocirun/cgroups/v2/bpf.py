"""The bpf(2) calls that load a BPF_PROG_TYPE_CGROUP_DEVICE program and attach it to a cgroup,
through ctypes (imported here only: a container on a cgroup v2 host with device rules).

Attaching follows runc's LoadAttachCgroupDeviceFilter (libcontainer/cgroups/ebpf): list the
programs already attached, attach the new one with BPF_F_ALLOW_MULTI, then detach the old ones,
so the cgroup is never without a filter.
"""

import ctypes
import errno
import os

from ocirun.errors import CgroupError

SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361}  # little-endian only
BPF_PROG_LOAD, BPF_PROG_ATTACH, BPF_PROG_DETACH = 5, 8, 9
BPF_PROG_GET_FD_BY_ID, BPF_PROG_QUERY = 13, 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6  # attach type
BPF_F_ALLOW_MULTI = 2

u32, u64 = ctypes.c_uint32, ctypes.c_uint64


class ProgLoad(ctypes.Structure):
    _fields_ = [
        ("prog_type", u32),
        ("insn_cnt", u32),
        ("insns", u64),
        ("license", u64),
        ("log_level", u32),
        ("log_size", u32),
        ("log_buf", u64),
        ("kern_version", u32),
        ("prog_flags", u32),
        ("prog_name", ctypes.c_char * 16),
    ]


class Attach(ctypes.Structure):
    _fields_ = [
        ("target_fd", u32),
        ("attach_bpf_fd", u32),
        ("attach_type", u32),
        ("attach_flags", u32),
    ]


class Query(ctypes.Structure):
    _fields_ = [
        ("target_fd", u32),
        ("attach_type", u32),
        ("query_flags", u32),
        ("attach_flags", u32),
        ("prog_ids", u64),
        ("prog_cnt", u32),
    ]


class GetFdById(ctypes.Structure):
    _fields_ = [("prog_id", u32), ("next_id", u32), ("open_flags", u32)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _bpf(command: int, attr: ctypes.Structure) -> int:
    number = SYS_BPF.get(os.uname().machine)
    if number is None:
        raise CgroupError(f"devices: no bpf(2) syscall number known for {os.uname().machine}")
    result = _libc.syscall(number, command, ctypes.byref(attr), ctypes.sizeof(attr))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def attach_device_filter(directory: str, instructions: bytes) -> None:
    """Load the program and make it the cgroup's only device filter."""
    try:
        dirfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise CgroupError(f"devices: cannot open {directory}: {e.strerror}") from None
    try:
        old = _attached(dirfd)
        program = _load(instructions)
        try:
            attach = Attach(dirfd, program, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)
            try:
                _bpf(BPF_PROG_ATTACH, attach)
            except OSError as e:
                raise CgroupError(
                    f"devices: cannot attach the device filter to {directory}: {e.strerror}"
                ) from None
        finally:
            os.close(program)
        for prog_id in old:
            _detach(dirfd, prog_id, directory)
    finally:
        os.close(dirfd)


def _load(instructions: bytes) -> int:
    code = ctypes.create_string_buffer(instructions, len(instructions))
    license = ctypes.create_string_buffer(b"Apache")
    log = ctypes.create_string_buffer(65536)
    attr = ProgLoad(
        prog_type=BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt=len(instructions) // 8,
        insns=ctypes.addressof(code),
        license=ctypes.addressof(license),
        log_level=1,
        log_size=len(log),
        log_buf=ctypes.addressof(log),
        prog_name=b"ocirun_devices",
    )
    try:
        return _bpf(BPF_PROG_LOAD, attr)
    except OSError as e:
        verifier = log.value.decode(errors="replace").strip().replace("\n", "; ")
        raise CgroupError(
            f"devices: cannot load the eBPF device filter: {e.strerror} {verifier}"
        ) from None


def _attached(dirfd: int) -> list[int]:
    """The ids of the device programs attached to the cgroup (at most 64 in practice)."""
    count = 64
    while True:
        ids = (u32 * count)()
        query = Query(dirfd, BPF_CGROUP_DEVICE, 0, 0, ctypes.addressof(ids), count)
        try:
            _bpf(BPF_PROG_QUERY, query)
        except OSError as e:
            if e.errno == errno.ENOSPC:  # more than count: the kernel said how many
                count = query.prog_cnt
                continue
            raise CgroupError(
                f"devices: cannot list the cgroup's device filters: {e.strerror}"
            ) from None
        return list(ids[: query.prog_cnt])


def _detach(dirfd: int, prog_id: int, directory: str) -> None:
    try:
        program = _bpf(BPF_PROG_GET_FD_BY_ID, GetFdById(prog_id))
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.EPERM, errno.EACCES):
            return  # gone meanwhile, or an LSM hides it: an extra filter only restricts more
        raise CgroupError(f"devices: cannot open device filter {prog_id}: {e.strerror}") from None
    try:
        _bpf(BPF_PROG_DETACH, Attach(dirfd, program, BPF_CGROUP_DEVICE, 0))
    except OSError as e:
        raise CgroupError(
            f"devices: cannot detach the old device filter {prog_id} from {directory}: {e.strerror}"
        ) from None
    finally:
        os.close(program)
