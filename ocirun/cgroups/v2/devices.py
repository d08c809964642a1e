"""cgroup v2 devices: an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE, generated from the
rules like runc's devicefilter (itself from crun's ebpf.c) and attached to the cgroup."""

from ocirun.cgroups.devices import WILDCARD, DeviceRules

# struct bpf_cgroup_dev_ctx { u32 access_type (type | access << 16); u32 major; u32 minor; }
DEV_TYPE = {"b": 1, "c": 2}  # BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR
ACCESS = {1: 2, 2: 4, 4: 1}  # our r, w, m bits -> BPF_DEVCG_ACC_READ, _WRITE, _MKNOD

# opcodes
LDX_MEM_W = 0x61  # dst = *(u32 *)(src + off)
AND32_IMM = 0x54
RSH32_IMM = 0x74
MOV32_REG = 0xBC
MOV32_IMM = 0xB4
JNE_IMM = 0x55
JNE_REG = 0x5D
EXIT = 0x95


def apply(directory: str, rules: list[dict]) -> None:
    from ocirun.cgroups.v2 import bpf

    bpf.attach_device_filter(directory, program(DeviceRules(rules)))


def program(rules: DeviceRules) -> bytes:
    """R2 = device type, R3 = requested access, R4 = major, R5 = minor; then one block per
    exception (jump to the next block on mismatch, else return the exception's verdict);
    then the default verdict."""
    code = [
        _insn(LDX_MEM_W, 2, 1, 0),
        _insn(AND32_IMM, 2, imm=0xFFFF),
        _insn(LDX_MEM_W, 3, 1, 0),
        _insn(RSH32_IMM, 3, imm=16),
        _insn(LDX_MEM_W, 4, 1, 4),
        _insn(LDX_MEM_W, 5, 1, 8),
    ]
    verdict = 0 if rules.default_allow else 1  # every exception goes against the default
    for (kind, major, minor), bits in sorted(rules.exceptions.items()):
        access = sum(bpf_bit for bit, bpf_bit in ACCESS.items() if bits & bit)
        block = [(JNE_IMM, 2, 0, DEV_TYPE[kind])]
        if access != 7:  # not rwm: the request must ask for no more than the rule gives
            block += [(MOV32_REG, 1, 3, 0), (AND32_IMM, 1, 0, access), (JNE_REG, 1, 3, 0)]
        if major != WILDCARD:
            block.append((JNE_IMM, 4, 0, major))
        if minor != WILDCARD:
            block.append((JNE_IMM, 5, 0, minor))
        block += [(MOV32_IMM, 0, 0, verdict), (EXIT, 0, 0, 0)]
        for index, (op, dst, src, imm) in enumerate(block):
            jump = len(block) - index - 1 if op in (JNE_IMM, JNE_REG) else 0  # to the next block
            code.append(_insn(op, dst, src, jump, imm))
    code += [_insn(MOV32_IMM, 0, imm=1 - verdict), _insn(EXIT)]
    return b"".join(code)


def _insn(op: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """struct bpf_insn: u8 code, u8 dst_reg:4 src_reg:4, s16 off, s32 imm (little endian)."""
    return (
        bytes((op, src << 4 | dst))
        + off.to_bytes(2, "little", signed=True)
        + imm.to_bytes(4, "little", signed=True)
    )
