"""linux.seccomp: a filter built with libseccomp (through ctypes) and loaded just before exec.

The config's rules map one to one onto libseccomp's calls, as in runc: seccomp_init with the
default action, the extra architectures, one rule per syscall name (rules whose conditions
name an argument more than once become one rule per condition, as runc splits them), then
seccomp_load. Unknown syscall names are skipped, as runc skips them.
"""

import ctypes

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
FLAGS = {
    "SECCOMP_FILTER_FLAG_LOG": 6,  # SCMP_FLTATR_CTL_LOG
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 7,  # SCMP_FLTATR_CTL_SSB
}
ARCHITECTURES = (
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_RISCV64",
)  # fmt: skip
_ATTR_CTL_NNP = 3
_EPERM = 1
_NR_SCMP_ERROR = -1


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]  # fmt: skip


def check(seccomp: dict) -> None:
    """Refuse, at create, what libseccomp would refuse or what the spec forbids."""
    where = "config.json: linux.seccomp"
    _library()
    _action(seccomp["defaultAction"], seccomp.get("defaultErrnoRet"), f"{where}.defaultAction")
    for flag in seccomp.get("flags", []):
        if flag not in FLAGS:
            raise ConfigError(f"{where}.flags: unsupported flag {flag!r}")
    for i, rule in enumerate(seccomp.get("syscalls", [])):
        _action(rule["action"], rule.get("errnoRet"), f"{where}.syscalls[{i}].action")
        for arg in rule.get("args", []):
            if arg["op"] not in OPERATORS:
                raise ConfigError(f"{where}.syscalls[{i}].args: unknown op {arg['op']!r}")


def _action(name: str, errno_ret: int | None, where: str) -> int:
    if name not in ACTIONS:
        raise ConfigError(f"{where}: unknown action {name!r}")
    if name == "SCMP_ACT_NOTIFY":  # would block the syscall forever with no listener to answer
        raise ConfigError(f"{where}: SCMP_ACT_NOTIFY (listenerPath) is not supported by ocirun")
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
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(_ArgCmp)]  # fmt: skip
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    _lib = lib
    return lib


def load(seccomp: dict) -> None:
    """Build the filter and load it into this process (inherited across execve)."""
    lib = _library()
    default = _action(seccomp["defaultAction"], seccomp.get("defaultErrnoRet"), "defaultAction")
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise SetupError("linux.seccomp: seccomp_init failed")
    try:
        lib.seccomp_attr_set(ctx, _ATTR_CTL_NNP, 0)  # no_new_privs is the config's choice
        for flag in seccomp.get("flags", []):
            lib.seccomp_attr_set(ctx, FLAGS[flag], 1)
        for arch in seccomp.get("architectures", []):
            token = lib.seccomp_arch_resolve_name(arch.removeprefix("SCMP_ARCH_").lower().encode())
            if token and lib.seccomp_arch_add(ctx, token) not in (0, -17):  # -EEXIST: native
                raise SetupError(f"linux.seccomp.architectures: cannot add {arch}")
        for rule in seccomp.get("syscalls", []):
            _add_rule(lib, ctx, rule, default)
        if lib.seccomp_load(ctx) != 0:
            raise SetupError("linux.seccomp: loading the filter failed")
    finally:
        lib.seccomp_release(ctx)


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
