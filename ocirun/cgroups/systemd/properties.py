"""linux.resources and `org.systemd.property.*` annotations as systemd unit properties, as
runc 1.1 gives them (libcontainer/cgroups/systemd/v1.go, v2.go, common.go, devices.go;
specconv initSystemdProps). A property is (name, (D-Bus signature, value)).

What systemd has no property for is written to the cgroup files by the v1/v2 drivers.
"""

from ocirun.cgroups import convert
from ocirun.cgroups.common import warn
from ocirun.cgroups.devices import WILDCARD, DeviceRules
from ocirun.errors import CgroupError

UINT64_MAX = (1 << 64) - 1
DEFAULT_CPU_PERIOD = 100000  # µs, the kernel's default cfs period
ANNOTATION_PREFIX = "org.systemd.property."


def unit_properties(slice_: str, unit: str, pid: int, v2: bool, name: str = "") -> list[tuple]:
    """What every unit gets at StartTransientUnit, before its resources. name: the last part
    of cgroupsPath, for the Description (runc's is "libcontainer container NAME")."""
    properties = [("Description", ("s", f"ocirun container {name}"))] if name else []
    if unit.endswith(".slice"):
        properties.append(("Wants", ("as", [slice_])))  # its parent follows from its name
    else:
        properties += [("Slice", ("s", slice_)), ("Delegate", ("b", True))]
    properties.append(("PIDs", ("au", [pid])))
    io_accounting = "IOAccounting" if v2 else "BlockIOAccounting"
    for name in ("MemoryAccounting", "CPUAccounting", io_accounting, "TasksAccounting"):
        properties.append((name, ("b", True)))
    properties.append(("DefaultDependencies", ("b", False)))
    return properties


def resource_properties(resources: dict, v2: bool, version: "callable") -> list[tuple]:
    """linux.resources as properties; version() gives systemd's version, asked only when a
    property depends on it (CPUQuotaPeriodUSec: v242, AllowedCPUs/AllowedMemoryNodes: v244)."""
    properties = []
    if resources.get("devices") is not None:
        properties += device_properties(resources["devices"])
    memory = resources.get("memory") or {}
    cpu = resources.get("cpu") or {}
    limit = memory.get("limit") or 0
    if v2:
        if limit:
            properties.append(("MemoryMax", ("t", limit & UINT64_MAX)))
        if memory.get("reservation"):
            properties.append(("MemoryLow", ("t", memory["reservation"] & UINT64_MAX)))
        swap = convert.memory_swap_to_v2(memory.get("swap") or 0, limit)
        if swap:
            properties.append(("MemorySwapMax", ("t", swap & UINT64_MAX)))
        if weight := convert.cpu_shares_to_weight(cpu.get("shares") or 0):
            properties.append(("CPUWeight", ("t", weight)))
    else:
        if limit:
            properties.append(("MemoryLimit", ("t", limit & UINT64_MAX)))
        if cpu.get("shares"):
            properties.append(("CPUShares", ("t", cpu["shares"])))
    properties += cpu_quota_properties(cpu.get("quota") or 0, cpu.get("period") or 0, version)
    weight = (resources.get("blockIO") or {}).get("weight") or 0
    if weight and v2:
        properties.append(("IOWeight", ("t", convert.blkio_weight_to_io_weight(weight))))
    elif weight:
        properties.append(("BlockIOWeight", ("t", weight)))
    pids_limit = (resources.get("pids") or {}).get("limit") or 0
    if pids_limit > 0 or pids_limit == -1:
        properties.append(("TasksMax", ("t", pids_limit & UINT64_MAX)))
    properties += cpuset_properties(cpu.get("cpus") or "", cpu.get("mems") or "", version)
    if v2 and resources.get("unified"):
        properties += unified_properties(resources["unified"], version)
    return properties


def cpu_quota_properties(quota: int, period: int, version) -> list[tuple]:
    """CPUQuotaPerSecUSec (µs of CPU per second: systemd keeps it as a percentage, so runc
    rounds it up to 10 ms for the quota to fit) and CPUQuotaPeriodUSec."""
    properties = []
    if period and version() >= 242:
        properties.append(("CPUQuotaPeriodUSec", ("t", period)))
    if quota or period:
        per_second = UINT64_MAX  # no quota: systemd's USEC_INFINITY
        if quota > 0:
            per_second = quota * 1000000 // (period or DEFAULT_CPU_PERIOD)
            if per_second % 10000:
                per_second = (per_second // 10000 + 1) * 10000
        properties.append(("CPUQuotaPerSecUSec", ("t", per_second)))
    return properties


def cpuset_properties(cpus: str, mems: str, version) -> list[tuple]:
    if not (cpus or mems) or version() < 244:
        return []
    properties = []
    if cpus:
        properties.append(("AllowedCPUs", ("ay", range_to_bits(cpus))))
    if mems:
        properties.append(("AllowedMemoryNodes", ("ay", range_to_bits(mems))))
    return properties


def range_to_bits(text: str) -> bytes:
    """A cpuset list ("0-2,5") as systemd's bit mask: bytes, lowest CPU in the lowest bit of
    the first byte."""
    mask = 0
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        first, _, last = part.partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            raise CgroupError(f"invalid cpuset list {text!r}") from None
        if low < 0 or high < low:
            raise CgroupError(f"invalid cpuset list {text!r}")
        mask |= ((1 << (high - low + 1)) - 1) << low
    return mask.to_bytes(max(1, (mask.bit_length() + 7) // 8), "little")


def unified_properties(unified: dict, version) -> list[tuple]:
    """The `unified` keys systemd has a property for (runc 1.1 unifiedResToSystemdProps)."""
    properties = []
    for key, value in unified.items():
        value = value.strip()
        if key == "cpu.weight":
            properties.append(("CPUWeight", ("t", _number(key, value))))
        elif key == "cpu.max":
            quota, _, period = value.partition(" ")
            properties += cpu_quota_properties(
                -1 if quota == "max" else _number(key, quota), _number(key, period or "0"), version
            )
        elif key in ("cpuset.cpus", "cpuset.mems"):
            cpus, mems = (value, "") if key == "cpuset.cpus" else ("", value)
            properties += cpuset_properties(cpus, mems, version)
        elif key in _UNIFIED_MEMORY:
            number = UINT64_MAX if value == "max" else _number(key, value)
            properties.append((_UNIFIED_MEMORY[key], ("t", number)))
    return properties


_UNIFIED_MEMORY = {"memory.high": "MemoryHigh", "memory.low": "MemoryLow",
                   "memory.min": "MemoryMin", "memory.max": "MemoryMax",
                   "memory.swap.max": "MemorySwapMax", "pids.max": "TasksMax"}  # fmt: skip


def _number(key: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise CgroupError(f"unified {key}: invalid value {text!r}") from None


def device_properties(rules: list[dict]) -> list[tuple]:
    """DevicePolicy and DeviceAllow: systemd knows only allow-lists ("strict"); a deny-list
    that is not allow-all becomes deny-all here (the cgroup driver then applies the exact
    rules), with a warning, as in runc."""
    emulated = DeviceRules(rules)
    if emulated.default_allow:
        if not emulated.exceptions:
            return [("DevicePolicy", ("s", "auto")), ("DeviceAllow", ("a(ss)", []))]
        warn("systemd has no deny-list device rules: DevicePolicy=strict with no DeviceAllow")
        return [("DevicePolicy", ("s", "strict")), ("DeviceAllow", ("a(ss)", []))]
    allowed = []
    groups = None
    for (kind, major, minor), bits in sorted(emulated.exceptions.items()):
        access = "".join(letter for letter, bit in (("r", 1), ("w", 2), ("m", 4)) if bits & bit)
        node = "char" if kind == "c" else "block"
        if major == WILDCARD:
            if minor != WILDCARD:
                warn(f"systemd has no '{kind} *:{minor}' device rules: rule ignored")
                continue
            allowed.append((f"{node}-*", access))
        elif minor == WILDCARD:
            if groups is None:
                groups = _device_groups()
            if group := groups.get((node, major)):
                allowed.append((f"{node}-{group}", access))
            else:
                warn(f"no device group with major {major} in /proc/devices: rule ignored")
        else:
            allowed.append((f"/dev/{node}/{major}:{minor}", access))
    return [("DevicePolicy", ("s", "strict")), ("DeviceAllow", ("a(ss)", allowed))]


def _device_groups() -> dict[tuple[str, int], str]:
    """(char|block, major) -> driver name, from /proc/devices ("136 pts" -> char-pts)."""
    from ocirun.cgroups.common import read_path

    groups: dict[tuple[str, int], str] = {}
    node = ""
    for line in read_path("/proc/devices").splitlines():
        if line.startswith("Character"):
            node = "char"
        elif line.startswith("Block"):
            node = "block"
        elif (fields := line.split()) and len(fields) == 2 and fields[0].isdigit():
            groups.setdefault((node, int(fields[0])), fields[1])
    return groups


def annotation_properties(annotations: dict) -> list[tuple]:
    """`org.systemd.property.NAME` annotations: NAME (ASCII letters, 3 or more) with a value in
    GVariant text form; NAME ending in a lowercase letter and "Sec" is the USec property, its
    number of seconds turned into µs (runc 1.1)."""
    properties = []
    for key, text in annotations.items():
        if not key.startswith(ANNOTATION_PREFIX):
            continue
        name = key[len(ANNOTATION_PREFIX) :]
        if len(name) < 3 or not name.isascii() or not name.isalpha():
            raise CgroupError(f"annotation {key}: invalid property name (ASCII letters, 3+)")
        try:
            signature, value = parse_variant(text)
        except ValueError as e:
            raise CgroupError(f"annotation {key}={text}: {e}") from None
        if name.endswith("Sec") and "a" <= name[-4] <= "z":
            if signature not in "ynqiuxtd" or isinstance(value, bool):
                raise CgroupError(f"annotation {key}={text}: not a number of seconds")
            name, signature, value = name[:-3] + "USec", "t", int(value * 1000000)
        properties.append((name, (signature, value)))
    return properties


_TYPE_WORDS = {"boolean": "b", "byte": "y", "int16": "n", "uint16": "q", "int32": "i",
               "uint32": "u", "int64": "x", "uint64": "t", "double": "d", "string": "s",
               "objectpath": "o", "signature": "g"}  # fmt: skip


def parse_variant(text: str) -> tuple[str, object]:
    """A value in GVariant text form (what runc 1.1's parser takes): true/false, numbers
    (untyped: int32, or double with '.' or 'e'), '...' or "..." strings, [arrays] of one
    type, with type words (uint64 5, objectpath '/x') or @T annotations (@t 5, @as [])."""
    parser = _VariantParser(text)
    signature, value = parser.value(None)
    parser.skip_space()
    if parser.i != len(text):
        raise ValueError(f"unexpected {text[parser.i :]!r}")
    return signature, value


class _VariantParser:
    def __init__(self, text: str) -> None:
        self.text, self.i = text, 0

    def skip_space(self) -> None:
        while self.i < len(self.text) and self.text[self.i].isspace():
            self.i += 1

    def value(self, want: str | None) -> tuple[str, object]:
        self.skip_space()
        text = self.text[self.i :]
        if text.startswith("@"):
            end = self.i + 1
            while end < len(self.text) and not self.text[end].isspace():
                end += 1
            want = self.text[self.i + 1 : end]
            self.i = end
            return self.value(want)
        for word, code in _TYPE_WORDS.items():
            if text.startswith(word) and text[len(word) : len(word) + 1].isspace():
                self.i += len(word)
                return self.value(code)
        if not text:
            raise ValueError("a value is missing")
        first = text[0]
        if first == "[":
            return self._array(want)
        if first in "'\"":
            string = self._string(first)
            kind = want or "s"
            if kind not in "sog":
                raise ValueError(f"a string where type {kind!r} is wanted")
            return kind, string
        for word, flag in (("true", True), ("false", False)):
            if text.startswith(word):
                self.i += len(word)
                if want not in (None, "b"):
                    raise ValueError(f"a boolean where type {want!r} is wanted")
                return "b", flag
        return self._number(want)

    def _array(self, want: str | None) -> tuple[str, object]:
        if want is not None and not want.startswith("a"):
            raise ValueError(f"an array where type {want!r} is wanted")
        element = want[1:] if want else None
        self.i += 1
        items: list = []
        while True:
            self.skip_space()
            if self.text[self.i : self.i + 1] == "]":
                self.i += 1
                break
            if items:
                if self.text[self.i : self.i + 1] != ",":
                    raise ValueError("',' or ']' expected in an array")
                self.i += 1
            kind, item = self.value(element)
            if element is not None and kind != element:
                raise ValueError(f"array items of types {element!r} and {kind!r}")
            element = kind
            items.append(item)
        if element is None:
            raise ValueError("the type of an empty array is unknown: write @as [] or similar")
        return "a" + element, items

    def _string(self, quote: str) -> str:
        self.i += 1
        chars = []
        while self.i < len(self.text) and self.text[self.i] != quote:
            char = self.text[self.i]
            if char == "\\" and self.i + 1 < len(self.text):
                self.i += 1
                char = {"n": "\n", "t": "\t", "r": "\r"}.get(self.text[self.i], self.text[self.i])
            chars.append(char)
            self.i += 1
        if self.i >= len(self.text):
            raise ValueError("unterminated string")
        self.i += 1
        return "".join(chars)

    def _number(self, want: str | None) -> tuple[str, object]:
        end = self.i
        while end < len(self.text) and self.text[end] not in " \t\n,]":
            end += 1
        word = self.text[self.i : end]
        self.i = end
        kind = want or ("d" if any(c in word for c in ".eE") and not word.startswith("0x") else "i")
        try:
            if kind == "d":
                return kind, float(word)
            number = int(word, 0)
        except ValueError:
            raise ValueError(f"not a value: {word!r}") from None
        bits = {"y": 8, "n": 16, "q": 16, "i": 32, "u": 32, "x": 64, "t": 64}.get(kind)
        if bits is None:
            raise ValueError(f"a number where type {kind!r} is wanted")
        signed = kind in "nix"
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        if not low <= number <= high:
            raise ValueError(f"{word} is out of range for type {kind!r}")
        return kind, number
