"""The default config and the patches cases apply to it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = Path(__file__).with_name("default-config.json")


def default_config() -> dict[str, Any]:
    """What `runc spec` generates, with process.terminal false."""
    return json.loads(DEFAULT_CONFIG.read_text())


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 merge patch, plus `key+: [...]` to append to a list."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.endswith("+"):
            name = key[:-1]
            result[name] = list(result.get(name) or []) + copy.deepcopy(value)
        elif value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def patch_sets(patch: dict[str, Any], *path: str) -> bool:
    """Whether the patch sets (or removes) the field at path."""
    node: Any = patch
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def new_paths(config: dict[str, Any]) -> list[str]:
    """Container paths a runtime may have to create for mounts and devices."""
    paths = [m.get("destination", "") for m in config.get("mounts") or []]
    paths += [d.get("path", "") for d in (config.get("linux") or {}).get("devices") or []]
    return [p for p in paths if isinstance(p, str)]


def fits_shared_rootfs(config: dict[str, Any], rootfs: Path) -> bool:
    """A read-only rootfs may be shared when the runtime needs to create nothing in it."""
    root = config.get("root") or {}
    if root.get("readonly") is not True:
        return False
    namespaces = (config.get("linux") or {}).get("namespaces") or []
    if any(ns.get("type") == "user" for ns in namespaces):
        return False
    for path in new_paths(config):
        inside = "/" + path.lstrip("/")
        if inside.startswith(("/dev/", "/proc/", "/sys/")):
            continue
        if not (rootfs / inside.lstrip("/")).exists():
            return False
    return True
