"""Matchers: how case data says what text, JSON or a probe's output must look like."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from .host import Mount, parse_mountinfo

CAPABILITIES = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
]


class Mismatch(Exception):
    def __init__(self, expected: str, seen: str) -> None:
        super().__init__(f"expected {expected}, saw {seen}")
        self.expected = expected
        self.seen = seen


def short(text: Any, limit: int = 300) -> str:
    shown = text if isinstance(text, str) else json.dumps(text)
    shown = shown.strip()
    return repr(shown if len(shown) <= limit else shown[:limit] + "...")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def same(expected: Any, seen: Any) -> bool:
    if isinstance(expected, bool) or isinstance(seen, bool):
        return expected is seen
    if type(expected) is not type(seen) and not isinstance(expected, (dict, list)):
        return str(expected) == str(seen)
    return expected == seen


def check_equals(expected: Any, text: str) -> None:
    if text.strip() != str(expected).strip():
        raise Mismatch(short(str(expected)), short(text))


def check_contains(expected: Any, text: str) -> None:
    for item in as_list(expected):
        if str(item) not in text:
            raise Mismatch(f"text containing {short(str(item))}", short(text))


def check_lacks(expected: Any, text: str) -> None:
    for item in as_list(expected):
        if str(item) in text:
            raise Mismatch(f"text without {short(str(item))}", short(text))


def check_regex(expected: Any, text: str) -> None:
    for pattern in as_list(expected):
        if not re.search(pattern, text.rstrip(), re.MULTILINE):
            raise Mismatch(f"text matching /{pattern}/", short(text))


def check_json(expected: Any, text: str) -> None:
    try:
        data = json.loads(text)
    except ValueError:
        raise Mismatch("JSON", short(text)) from None
    check_value(expected, data, "")


def check_value(expected: Any, seen: Any, where: str) -> None:
    """Expected mappings are partial: listed fields must match, others may be anything."""
    if isinstance(expected, dict) and isinstance(seen, dict):
        for key, value in expected.items():
            if value is None:
                if key in seen:
                    raise Mismatch(f"no field {where}{key}", short(seen[key]))
                continue
            if key not in seen:
                raise Mismatch(f"field {where}{key} = {short(value)}", "no such field")
            check_value(value, seen[key], f"{where}{key}.")
    elif not same(expected, seen):
        raise Mismatch(f"{where.rstrip('.') or 'value'} = {short(expected)}", short(seen))


def proc_status(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def check_status(expected: dict[str, Any], text: str) -> None:
    fields = proc_status(text)
    for key, value in expected.items():
        seen = fields.get(key)
        if seen is None or seen.split() != str(value).split():
            raise Mismatch(f"{key}: {value}", f"{key}: {seen}")


def cap_names(mask: str) -> set[str]:
    bits = int(mask, 16)
    return {name for i, name in enumerate(CAPABILITIES) if bits >> i & 1}


def check_caps(expected: dict[str, list[str]], text: str) -> None:
    fields = proc_status(text)
    for key, names in expected.items():
        if key not in fields:
            raise Mismatch(f"a {key} line", "none")
        seen = cap_names(fields[key])
        if seen != set(names):
            raise Mismatch(f"{key} {sorted(names)}", f"{sorted(seen)}")


def proc_limits(text: str) -> dict[str, tuple[str, str]]:
    limits = {}
    for line in text.splitlines()[1:]:
        name, values = line[:26].strip(), line[26:].split()
        if len(values) >= 2:
            limits[name] = (values[0], values[1])
    return limits


def check_limits(expected: dict[str, list[Any]], text: str) -> None:
    limits = proc_limits(text)
    for name, (soft, hard) in expected.items():
        seen = limits.get(name)
        if seen != (str(soft), str(hard)):
            raise Mismatch(f"{name} soft {soft} hard {hard}", f"{seen}")


def find_mount(mounts: list[Mount], point: str) -> Mount | None:
    found = [m for m in mounts if m.point == point]
    return found[-1] if found else None


def check_mount(expected: dict[str, Any], text: str) -> None:
    """The topmost mount at expected['path'] in a mountinfo listing."""
    mount = find_mount(parse_mountinfo(text), expected["path"])
    if expected.get("absent"):
        if mount:
            raise Mismatch(f"no mount at {expected['path']}", f"a {mount.fstype} mount")
        return
    if mount is None:
        raise Mismatch(f"a mount at {expected['path']}", "none")
    check_mount_fields(expected, mount)


def check_mounts(expected: Any, text: str) -> None:
    for item in as_list(expected):
        check_mount(item, text)


def check_mount_fields(expected: dict[str, Any], mount: Mount) -> None:
    seen = f"{mount.fstype} {','.join(mount.options)} - {','.join(mount.super_options)}"
    for option in as_list(expected.get("options", [])):
        if option not in mount.options:
            raise Mismatch(f"{mount.point} mounted {option}", seen)
    for option in as_list(expected.get("without", [])):
        if option in mount.options:
            raise Mismatch(f"{mount.point} mounted without {option}", seen)
    for option in as_list(expected.get("super", [])):
        if option not in mount.super_options:
            raise Mismatch(f"{mount.point} superblock option {option}", seen)
    for key in ("fstype", "root", "propagation"):
        if key in expected and str(getattr(mount, key)) != str(expected[key]):
            raise Mismatch(f"{mount.point} {key} {expected[key]}", str(getattr(mount, key)))


def check_mount_order(expected: list[str], text: str) -> None:
    points = [m.point for m in parse_mountinfo(text)]
    positions = []
    for point in expected:
        if point not in points:
            raise Mismatch(f"a mount at {point}", "none")
        positions.append(points.index(point))
    if positions != sorted(positions):
        raise Mismatch(
            f"mounts in the order {expected}", f"{[points[i] for i in sorted(positions)]}"
        )


MATCHERS: dict[str, Callable[[Any, str], None]] = {
    "equals": check_equals,
    "contains": check_contains,
    "lacks": check_lacks,
    "regex": check_regex,
    "json": check_json,
    "status": check_status,
    "caps": check_caps,
    "limits": check_limits,
    "mount": check_mounts,
    "mount_order": check_mount_order,
}


def check_text(expected: Any, text: str) -> None:
    """A plain value must equal the (stripped) text; a mapping combines matchers."""
    if not isinstance(expected, dict):
        check_equals(expected, text)
        return
    for key, value in expected.items():
        if key not in MATCHERS:
            raise Mismatch(f"a known matcher (one of {sorted(MATCHERS)})", key)
        MATCHERS[key](value, text)
