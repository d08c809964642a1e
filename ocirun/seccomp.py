"""linux.seccomp: a filter built with libseccomp (through ctypes), patched, and loaded last.

The config's rules map one to one onto libseccomp's calls, as in runc: seccomp_init with the
default action, the extra architectures, one rule per syscall name (rules whose conditions
name an argument more than once become one rule per condition, as runc splits them). Unknown
syscall names are skipped, as runc skips them. The program libseccomp generates is exported
and loaded with seccomp(2) behind a stub that, as runc 1.1 does, answers -ENOSYS to any
syscall numbered above the highest one the profile names for its architecture: a syscall
newer than the profile (clone3 under an older allowlist) then fails the way it fails on an
older kernel, and libc falls back, instead of meeting the default action (EPERM, or death).
SCMP_ACT_NOTIFY rules make the kernel hand out a listener fd, which the caller passes on to
the agent at linux.seccomp.listenerPath (ocirun/seccomp_agent.py).
"""

import ctypes
import os
import struct

from ocirun.errors import ConfigError, SetupError

ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000, "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000, "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000, "SCMP_ACT_NOTIFY": 0x7FC00000,
}  # fmt: skip
OPERATORS = {
    "SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7,
}  # fmt: skip
FLAGS = {"SECCOMP_FILTER_FLAG_LOG": 1 << 1, "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 1 << 2}
ARCHITECTURES = (
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_RISCV64",
)  # fmt: skip
_ATTR_CTL_NNP = 3
_FLAG_NEW_LISTENER = 1 << 3
_SET_MODE_FILTER = 1
_ENOSYS = 38
_EPERM = 1
_NR_SCMP_ERROR = -1
_X32_BIT = 1 << 30
_AUDIT_ARCH_X86_64 = 0xC000003E
_SCMP_ARCH_X32 = 0x4000003E  # libseccomp's own token: x32 shares x86_64's AUDIT_ARCH
_S390 = (0x16, 0x80000016)  # AUDIT_ARCH_S390, AUDIT_ARCH_S390X (tokens without the flag bits)
# classic BPF opcodes: ld [k]; ja k; jeq/jgt/jset #k, jt, jf; ret #k
_LD_ABS, _JA, _JEQ, _JGT, _JSET, _RET = 0x20, 0x05, 0x15, 0x25, 0x45, 0x06


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]  # fmt: skip


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def check(seccomp: dict) -> None:
    """Refuse, at create, what libseccomp would refuse or what the spec forbids."""
    where = "config.json: linux.seccomp"
    _library()
    default = seccomp["defaultAction"]
    _action(default, seccomp.get("defaultErrnoRet"), f"{where}.defaultAction")
    if default == "SCMP_ACT_NOTIFY":  # the init's own calls would wait for the agent forever
        raise ConfigError(f"{where}.defaultAction: SCMP_ACT_NOTIFY cannot be the default action")
    for flag in seccomp.get("flags", []):
        if flag not in FLAGS:
            raise ConfigError(f"{where}.flags: unsupported flag {flag!r}")
    for i, rule in enumerate(seccomp.get("syscalls", [])):
        _action(rule["action"], rule.get("errnoRet"), f"{where}.syscalls[{i}].action")
        for arg in rule.get("args", []):
            if arg["op"] not in OPERATORS:
                raise ConfigError(f"{where}.syscalls[{i}].args: unknown op {arg['op']!r}")
        if rule["action"] == "SCMP_ACT_NOTIFY":
            if not seccomp.get("listenerPath"):
                raise ConfigError(f"{where}.listenerPath: SCMP_ACT_NOTIFY needs a listener")
            if "write" in rule["names"]:  # the init writes the listener fd's number to ocirun
                raise ConfigError(
                    f"{where}.syscalls[{i}]: SCMP_ACT_NOTIFY cannot be used for the write syscall"
                )
    if wants_listener(seccomp):
        import ocirun.seccomp_agent  # noqa: F401  (now: the init cannot once in the container)


def wants_listener(seccomp: dict | None) -> bool:
    """Whether loading this filter gives a listener fd for the agent at listenerPath."""
    return bool(seccomp) and any(
        rule["action"] == "SCMP_ACT_NOTIFY" for rule in seccomp.get("syscalls", [])
    )


def _action(name: str, errno_ret: int | None, where: str) -> int:
    if name not in ACTIONS:
        raise ConfigError(f"{where}: unknown action {name!r}")
    if errno_ret is not None and name not in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        raise ConfigError(f"{where}: errnoRet is only for SCMP_ACT_ERRNO and SCMP_ACT_TRACE")
    if name == "SCMP_ACT_ERRNO":
        return ACTIONS[name] | ((_EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        return ACTIONS[name] | ((errno_ret or 0) & 0xFFFF)
    return ACTIONS[name]


_lib = None


def _library():
    """libseccomp, loaded once: by `create` before forking, since the init cannot reach the
    host's /usr/lib once it has entered the container's root."""
    global _lib
    if _lib is not None:
        return _lib
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        from ctypes.util import find_library  # imports re, subprocess: only if the name fails

        try:
            lib = ctypes.CDLL(find_library("seccomp") or "libseccomp.so", use_errno=True)
        except OSError as exc:
            raise ConfigError(f"config.json: linux.seccomp: no libseccomp here: {exc}") from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_native.restype = ctypes.c_uint32
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(_ArgCmp)]  # fmt: skip
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    _lib = lib
    return lib


class Filter:
    """A program ready to load: built and patched before the last steps, so that loading it
    is one seccomp(2) call and nothing but that call (and execve) comes after it."""

    def __init__(self, seccomp: dict) -> None:
        self.program = build(seccomp)
        self.flags = 0
        for flag in seccomp.get("flags", []):
            self.flags |= FLAGS[flag]
        if wants_listener(seccomp):
            self.flags |= _FLAG_NEW_LISTENER
        self._fprog = _SockFprog(len(self.program) // 8, self.program)

    def load(self) -> int:
        """Load into this thread; the listener fd (SCMP_ACT_NOTIFY), else -1."""
        from ocirun import syscalls as sc

        fd = sc.syscall("seccomp", _SET_MODE_FILTER, self.flags, ctypes.byref(self._fprog))
        return fd if self.flags & _FLAG_NEW_LISTENER else -1


def build(seccomp: dict) -> bytes:
    """The whole program: the -ENOSYS stub, then libseccomp's filter for the rules."""
    lib = _library()
    default = _action(seccomp["defaultAction"], seccomp.get("defaultErrnoRet"), "defaultAction")
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise SetupError("linux.seccomp: seccomp_init failed")
    try:
        lib.seccomp_attr_set(ctx, _ATTR_CTL_NNP, 0)  # no_new_privs is the config's choice
        for arch in seccomp.get("architectures", []):
            token = _arch_token(lib, arch)
            if token and lib.seccomp_arch_add(ctx, token) not in (0, -17):  # -EEXIST: native
                raise SetupError(f"linux.seccomp.architectures: cannot add {arch}")
        for rule in seccomp.get("syscalls", []):
            _add_rule(lib, ctx, rule, default)
        program = _export(lib, ctx)
    finally:
        lib.seccomp_release(ctx)
    if _wants_enosys_stub(seccomp):
        program = enosys_stub(_highest_syscalls(lib, seccomp)) + program
    if len(program) // 8 > 0xFFFF:
        raise SetupError("linux.seccomp: the filter has more than 65535 instructions")
    return program


def _arch_token(lib, arch: str) -> int:
    return lib.seccomp_arch_resolve_name(arch.removeprefix("SCMP_ARCH_").lower().encode())


def _export(lib, ctx) -> bytes:
    fd = os.memfd_create("seccomp", os.MFD_CLOEXEC)
    try:
        if lib.seccomp_export_bpf(ctx, fd) != 0:
            raise SetupError("linux.seccomp: libseccomp cannot export the filter")
        size = os.lseek(fd, 0, os.SEEK_END)
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def _add_rule(lib, ctx, rule: dict, default: int) -> None:
    action = _action(rule["action"], rule.get("errnoRet"), "action")
    if action == default:
        return  # libseccomp refuses rules that repeat the default action
    for conditions in _condition_sets(rule.get("args") or []):
        array = (_ArgCmp * max(1, len(conditions)))(*conditions)
        for name in rule["names"]:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number == _NR_SCMP_ERROR:
                continue  # a syscall this libseccomp does not know: skipped, as runc does
            if lib.seccomp_rule_add_array(ctx, action, number, len(conditions), array) != 0:
                raise SetupError(f"linux.seccomp: cannot add the rule for {name}")


def _condition_sets(args: list[dict]) -> list[list[_ArgCmp]]:
    """All conditions in one rule, or one rule per condition when an index repeats."""
    conditions = [
        _ArgCmp(a["index"], OPERATORS[a["op"]], a.get("value", 0), a.get("valueTwo", 0))
        for a in args
    ]
    if len({a["index"] for a in args}) == len(args):
        return [conditions]
    return [[c] for c in conditions]


def _wants_enosys_stub(seccomp: dict) -> bool:
    """runc 1.1 leaves permissive defaults alone (a tracer handles new syscalls itself); a
    default that already answers ENOSYS needs no stub."""
    default = seccomp["defaultAction"]
    if default in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE"):
        return False
    return not (default == "SCMP_ACT_ERRNO" and seccomp.get("defaultErrnoRet") == _ENOSYS)


def _highest_syscalls(lib, seccomp: dict) -> dict[int, dict[int, int]]:
    """{AUDIT_ARCH: {libseccomp arch: highest syscall number any rule names}} for the
    profile's architectures (none listed: no stub, as in runc)."""
    names = {name for rule in seccomp.get("syscalls", []) for name in rule["names"]}
    highest: dict[int, dict[int, int]] = {}
    for arch in seccomp.get("architectures", []):
        token = _arch_token(lib, arch)
        if arch == "SCMP_ARCH_NATIVE" or token == 0:
            token = lib.seccomp_arch_native()
        audit = _AUDIT_ARCH_X86_64 if token == _SCMP_ARCH_X32 else token
        numbers = [lib.seccomp_syscall_resolve_name_arch(token, n.encode()) for n in names]
        top = max((n for n in numbers if n >= 0), default=0)
        if top:
            highest.setdefault(audit, {})[token] = top
    return highest


def _insn(code: int, k: int = 0, jt: int = 0, jf: int = 0) -> tuple[int, int, int, int]:
    return (code, jt, jf, k)


def enosys_stub(highest: dict[int, dict[int, int]]) -> bytes:
    """cBPF that returns ERRNO(ENOSYS) for a syscall above the highest known for its
    architecture and falls through to the filter after it otherwise (x32 syscalls, which
    share x86_64's AUDIT_ARCH, are told apart by bit 30 of their number)."""
    enosys, to_filter = "enosys", "filter"
    code: list = [_insn(_LD_ABS, 4)]  # seccomp_data.arch
    for audit in highest:
        code += [_insn(_JEQ, audit, 0, 1), ("ja", f"arch{audit}")]
    code.append(("ja", to_filter))
    for audit, tops in highest.items():
        code += [("label", f"arch{audit}"), _insn(_LD_ABS, 0)]  # seccomp_data.nr
        if audit in _S390:  # unknown large numbers arrive as 0 (the multiplexer), as in runc
            code += [_insn(_JEQ, 0, 0, 1), ("ja", enosys)]
        if audit == _AUDIT_ARCH_X86_64:
            native, x32 = tops.get(audit), tops.get(_SCMP_ARCH_X32)
            if x32 is None:
                code += [_insn(_JSET, _X32_BIT, 0, 1), ("ja", to_filter)]
            elif native is None:
                code += [_insn(_JSET, _X32_BIT, 1, 0), ("ja", to_filter)]
            else:
                code += [_insn(_JSET, _X32_BIT, 0, 1), ("ja", f"x32_{audit}")]
            if native is not None:
                code += [_insn(_JGT, native, 0, 1), ("ja", enosys), ("ja", to_filter)]
            if x32 is not None:
                code += [("label", f"x32_{audit}"), _insn(_JGT, x32, 0, 1), ("ja", enosys),
                         ("ja", to_filter)]  # fmt: skip
        else:
            (top,) = tops.values()
            code += [_insn(_JGT, top, 0, 1), ("ja", enosys), ("ja", to_filter)]
    code += [("label", enosys), _insn(_RET, ACTIONS["SCMP_ACT_ERRNO"] | _ENOSYS),
             ("label", to_filter)]  # fmt: skip
    return _assemble(code)


def _assemble(code: list) -> bytes:
    """Resolve ("ja", label) jumps (relative to the next instruction) and pack host-endian."""
    labels, index = {}, 0
    for item in code:
        if item[0] == "label":
            labels[item[1]] = index
        else:
            index += 1
    out, index = bytearray(), 0
    for item in code:
        if item[0] == "label":
            continue
        if item[0] == "ja":
            item = _insn(_JA, labels[item[1]] - index - 1)
        out += struct.pack("=HBBI", *item)
        index += 1
    return bytes(out)
