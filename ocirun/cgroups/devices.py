"""Device access rules, evaluated the way the cgroup v1 devices controller does.

Both drivers follow runc (libcontainer/cgroups/devices/devices_emulator.go): the rules are played
in order against an emulated v1 devices cgroup that starts as an allow-list (deny everything);
an "a" rule resets it to allow-all or deny-all. What results is a default and a set of
exceptions, which v1 writes to devices.allow/deny and v2 compiles into an eBPF program.
"""

from ocirun.cgroups.common import warn
from ocirun.errors import CgroupError

WILDCARD = -1
PERMISSIONS = {"r": 1, "w": 2, "m": 4}

# runc's AllowedDevices (libcontainer/specconv), appended after the config's own rules.
DEFAULT_RULES = [
    {"allow": True, "type": "c", "access": "m"},  # mknod of any char device
    {"allow": True, "type": "b", "access": "m"},  # mknod of any block device
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},  # /dev/null
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},  # /dev/random
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},  # /dev/full
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},  # /dev/tty
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},  # /dev/zero
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},  # /dev/urandom
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},  # /dev/pts/*
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},  # /dev/ptmx
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},  # /dev/net/tun
]

Key = tuple[str, int, int]  # (type "c"|"b", major, minor), WILDCARD for "*"


class DeviceRules:
    """What a rule list leaves: default_allow and the exceptions to it (key -> permission bits)."""

    def __init__(self, rules: list[dict]):
        self.default_allow = False
        self.exceptions: dict[Key, int] = {}
        for rule in rules:
            self._apply(rule)

    def _apply(self, rule: dict) -> None:
        kind = rule.get("type") or "a"
        access = rule.get("access") or "rwm"
        if kind not in ("a", "b", "c"):
            raise CgroupError(f"devices: invalid rule {rule} (type a|b|c)")
        if unknown := "".join(sorted(set(access) - set(PERMISSIONS))):
            # runc 1.1 ignores such letters (clients send "rwa", e.g.): so do we, but say so
            warn(f"devices: rule {rule}: access {unknown!r} ignored (not r, w or m)")
            access = "".join(letter for letter in access if letter in PERMISSIONS)
        allow = bool(rule["allow"])
        if kind == "a":
            self.default_allow = allow
            self.exceptions = {}
            return
        major, minor = rule.get("major"), rule.get("minor")
        key = (kind, WILDCARD if major is None else major, WILDCARD if minor is None else minor)
        bits = 0
        for letter in access:
            bits |= PERMISSIONS[letter]
        if allow == self.default_allow:
            self._remove(key, bits, rule)
        else:
            self.exceptions[key] = self.exceptions.get(key, 0) | bits

    def _remove(self, key: Key, bits: int, rule: dict) -> None:
        # The v1 kernel silently ignores removing part of a wildcard exception; runc refuses it
        # rather than leave the user believing a hole was punched. So do we.
        kind, major, minor = key
        for wider in ((kind, WILDCARD, minor), (kind, major, WILDCARD), (kind, WILDCARD, WILDCARD)):
            if wider != key and self.exceptions.get(wider, 0) & bits:
                raise CgroupError(
                    f"devices: rule {rule} cannot punch a hole in the wildcard rule "
                    f"{line(wider, self.exceptions[wider])} (not supported by the devices cgroup)"
                )
        remaining = self.exceptions.get(key, 0) & ~bits
        if remaining:
            self.exceptions[key] = remaining
        else:
            self.exceptions.pop(key, None)


def line(key: Key, bits: int) -> str:
    """An exception as devices.allow/deny and devices.list spell it: "c 1:3 rwm"."""
    kind, major, minor = key
    access = "".join(letter for letter, bit in PERMISSIONS.items() if bits & bit)
    return f"{kind} {_number(major)}:{_number(minor)} {access}"


def _number(value: int) -> str:
    return "*" if value == WILDCARD else str(value)
