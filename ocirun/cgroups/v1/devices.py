"""cgroup v1 devices controller: devices.allow / devices.deny (runc fs/devices.go)."""

from ocirun.cgroups.common import read, write
from ocirun.cgroups.devices import DeviceRules, line
from ocirun.errors import CgroupError


def apply(directory: str, rules: list[dict]) -> None:
    """Reset the cgroup to the rules' default ("a" written to devices.allow or devices.deny
    also drops every earlier exception), write the exceptions, then check devices.list."""
    target = DeviceRules(rules)
    if target.default_allow:
        default_file, exception_file = "devices.allow", "devices.deny"
    else:
        default_file, exception_file = "devices.deny", "devices.allow"
    write(directory, default_file, "a")
    for key, bits in sorted(target.exceptions.items()):
        write(directory, exception_file, line(key, bits))
    _check(directory, target)


def _check(directory: str, target: DeviceRules) -> None:
    """The kernel quietly drops an exception the parent cgroup does not allow; runc compares
    devices.list with what it asked for, and so do we. An allow-all cgroup lists "a *:* rwm"
    and not its deny exceptions: for it only the mode can be checked."""
    listed = sorted(entry for entry in read(directory, "devices.list").split("\n") if entry)
    if target.default_allow:
        wanted = ["a *:* rwm"]
    else:
        wanted = sorted(line(key, bits) for key, bits in target.exceptions.items())
    if listed != wanted:
        raise CgroupError(
            f"{directory}/devices.list does not match the device rules (does the parent "
            f"cgroup forbid some?): have {listed}, want {wanted}"
        )
