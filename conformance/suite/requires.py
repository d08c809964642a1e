"""When a case cannot run here: the runtime's `features` or the host lack what it needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import host


def feature_value(features: dict[str, Any], dotted: str) -> Any:
    node: Any = features
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def missing_from_list(features: dict[str, Any] | None, dotted: str, item: str) -> bool:
    """True only when features lists the field and the item is not in it."""
    listed = feature_value(features or {}, dotted)
    return isinstance(listed, list) and item not in listed


def runtime_lacks(kind: str, value: str, features: dict[str, Any] | None) -> str | None:
    if kind == "namespace" and missing_from_list(features, "linux.namespaces", value):
        return f"runtime features: no {value} namespace"
    if kind == "mount_option" and missing_from_list(features, "mountOptions", value):
        return f"runtime features: no {value} mount option"
    if kind == "feature" and features is not None and not feature_value(features, value):
        return f"runtime features: {value} is not set"
    return None


def host_has_v1_controllers() -> bool:
    return any(
        h.version == 1 and h.controllers - {"name=systemd"} for h in host.cgroup_hierarchies()
    )


def host_lacks(kind: str, value: str) -> str | None:
    if kind == "host_path" and not Path(value).exists():
        return f"host lacks {value}"
    if kind == "any_host_path" and not any(Path(p).exists() for p in value.split("|")):
        return f"host lacks all of {value.replace('|', ', ')}"
    if kind == "no_host_path" and Path(value).exists():
        return f"host has {value}"
    if kind == "controller":
        version, _, name = value.rpartition(":")
        found = host.controller_hierarchy(name)
        if found is None or (version and f"v{found.version}" != version):
            return f"host has no {name} cgroup controller{' on ' + version if version else ''}"
    if kind == "cgroup":
        legacy = host_has_v1_controllers()
        if (value == "v1") != legacy:
            return f"host cgroups are not {value}"
    return None


def unmet(requires: list[dict[str, Any]], features: dict[str, Any] | None) -> str | None:
    for requirement in requires:
        ((kind, value),) = requirement.items()
        reason = runtime_lacks(kind, str(value), features) or host_lacks(kind, str(value))
        if reason:
            return reason
    return None
