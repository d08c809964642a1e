"""One run of the suite, and the containers ("slots") of one case."""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import host
from .config import default_config, fits_shared_rootfs, merge_patch, patch_sets
from .console import ConsoleSocket
from .model import Case
from .runtime import Runtime
from .template import TemplateError, render

CONTAINER_HOOK = '#!/bin/sh\n# a hook that only exists inside the container\nexec /bin/sh -c "$@"\n'


class CaseSkip(Exception):
    pass


@dataclass
class Session:
    """State shared by all cases of one run."""

    runtime: Runtime
    tmp: Path
    rootfs: Path
    cgroup_prefix: str
    spec_dir: Path | None
    timeout: float
    counter: int = 0

    def next_number(self) -> int:
        self.counter += 1
        return self.counter


def build_rootfs(directory: Path, make_rootfs: Path) -> None:
    subprocess.run([str(make_rootfs), str(directory)], check=True, timeout=120)
    (directory / "shared").mkdir(exist_ok=True)
    hook = directory / "conformance-hook"
    hook.write_text(CONTAINER_HOOK)
    hook.chmod(0o755)


@dataclass
class Slot:
    """One container of a case: its id, bundle, cgroup and what the suite saw of it."""

    name: str
    id: str
    bundle: Path
    cgroup: str
    patch: dict[str, Any]
    config: dict[str, Any] | None = None
    pid: int | None = None
    pid_start: str | None = None
    exit: int | None = None
    console: ConsoleSocket | None = None
    used: bool = False

    @property
    def stdout(self) -> Path:
        return self.bundle / "stdout"

    @property
    def stderr(self) -> Path:
        return self.bundle / "stderr"

    @property
    def pid_file(self) -> Path:
        return self.bundle / "pid"

    def process_alive(self) -> bool:
        """Whether the container process the suite saw is still there (not a reused pid)."""
        if self.pid is None or not host.alive(self.pid):
            return False
        return host.start_time(self.pid) == self.pid_start


def slug(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", name)[:40]


@dataclass
class CaseRun:
    session: Session
    case: Case
    directory: Path
    slots: dict[str, Slot] = field(default_factory=dict)

    @classmethod
    def begin(cls, session: Session, case: Case) -> CaseRun:
        number = session.next_number()
        directory = session.tmp / "cases" / f"{number:03d}-{slug(case.name)}"
        directory.mkdir(parents=True)
        run = cls(session, case, directory)
        for name in ["main", *case.containers]:
            run.slots[name] = run.new_slot(name, number)
        for slot in run.slots.values():
            try:
                run.prepare(slot)
            except (TemplateError, CaseSkip):
                pass  # it names another container's pid: written at its create
        return run

    def new_slot(self, name: str, number: int) -> Slot:
        suffix = "" if name == "main" else f"-{slug(name)}"
        ident = f"cf-{os.getpid()}-{number:03d}{suffix}"
        bundle = self.directory / name
        (bundle / "shared").mkdir(parents=True)
        cgroup = f"{self.session.cgroup_prefix}/{ident}"
        patch = merge_patch(self.case.config, self.case.containers.get(name) or {})
        return Slot(name, ident, bundle, cgroup, patch)

    def slot(self, name: str | None) -> Slot:
        if (name or "main") not in self.slots:
            raise TemplateError(f"no container {name!r} in this case")
        return self.slots[name or "main"]

    def lookup(self, name: str) -> Any:
        key, _, slot_name = name.partition(":")
        if key.startswith("features."):
            return self.feature(key.removeprefix("features."))
        if key in ("tmp", "state_root", "shared_rootfs", "runtime"):
            return {
                "tmp": self.session.tmp,
                "state_root": self.session.runtime.root,
                "shared_rootfs": self.session.rootfs,
                "runtime": self.session.runtime.path,
            }[key]
        return self.slot_value(self.slot(slot_name or None), key)

    def slot_value(self, slot: Slot, key: str) -> Any:
        values = {"id": slot.id, "bundle": slot.bundle, "cgroup": slot.cgroup}
        if key in values:
            return str(values[key])
        if key == "pid":
            if slot.pid is None:
                raise TemplateError(f"the pid of {slot.name} is not known yet")
            return slot.pid
        if key == "rootfs":
            return self.rootfs_path(slot)
        raise TemplateError(f"unknown placeholder {key!r}")

    def feature(self, dotted: str) -> Any:
        node: Any = self.session.runtime.features
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                raise CaseSkip(f"runtime features do not list {dotted}")
            node = node[part]
        return node

    def render(self, value: Any) -> Any:
        return render(value, self.lookup)

    def rootfs_path(self, slot: Slot) -> str:
        configured = (slot.patch.get("root") or {}).get("path")
        if configured is not None:
            path = Path(str(self.render(configured)))
            return str(path if path.is_absolute() else slot.bundle / path)
        return str(self.session.rootfs if self.shares_rootfs(slot) else slot.bundle / "rootfs")

    def shares_rootfs(self, slot: Slot) -> bool:
        """Decided on the unrendered config: a placeholder path counts as one to create."""
        if self.case.rootfs != "auto":
            return self.case.rootfs == "shared"
        return fits_shared_rootfs(merge_patch(default_config(), slot.patch), self.session.rootfs)

    def config_for(self, slot: Slot) -> dict[str, Any]:
        config = default_config()
        config["linux"]["cgroupsPath"] = slot.cgroup
        if self.shares_rootfs(slot):
            config["root"]["path"] = str(self.session.rootfs)
        config = merge_patch(config, self.render(slot.patch))
        if self.case.probe is not None and not patch_sets(slot.patch, "process", "args"):
            config["process"]["args"] = ["sh", "-c", self.render(self.case.probe)]
        return config

    def prepare(self, slot: Slot) -> None:
        """Write the bundle of a slot: config.json and, unless it shares one, a rootfs copy."""
        if slot.config is not None:
            return
        config = self.config_for(slot)
        if not self.shares_rootfs(slot):
            copy_rootfs(self.session.rootfs, slot.bundle / "rootfs")
        write_config(slot.bundle, config)
        slot.config = config

    def terminal(self, slot: Slot) -> bool:
        return bool(((slot.config or {}).get("process") or {}).get("terminal"))


def copy_rootfs(source: Path, target: Path) -> None:
    subprocess.run(["cp", "-a", str(source), str(target)], check=True, timeout=60)


def write_config(bundle: Path, config: dict[str, Any]) -> None:
    (bundle / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def remove_tree(directory: Path) -> None:
    """Remove a directory that may have held mounts: unmount first, never cross filesystems."""
    if not directory.exists():
        return
    host.unmount_all_under(directory)
    subprocess.run(["rm", "-rf", "--one-file-system", str(directory)], timeout=120)


def make_temp_root() -> Path:
    base = Path(os.environ.get("TMPDIR", "/tmp"))
    path = base / f"conformance-{os.getpid()}"
    path.mkdir(mode=0o755)
    return path
