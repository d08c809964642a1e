"""Cases as data: loading and checking the YAML documents under cases/."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CASE_KEYS = {
    "name",
    "spec",
    "what",
    "config",
    "containers",
    "rootfs",
    "probe",
    "steps",
    "expect",
    "requires",
    "deviations",
    "cleanup",
}
REQUIRED_CASE_KEYS = {"name", "spec", "what"}

COMMON_STEP_KEYS = {"ctr", "ok", "timeout"}
STEP_KEYS: dict[str, set[str]] = {
    "create": {"id", "bundle", "cwd", "leak_fd", "caller", "max_seconds"},
    "start": {"id", "max_seconds"},
    "kill": {"id", "signal"},
    "delete": {"id", "force"},
    "state": {"id", "expect"},
    "run": {"id", "cwd", "exit", "stdout"},
    "features": {"expect"},
    "wait": {"exit", "stdout", "stderr"},
    "host": {"script", "exit", "stdout"},
    "edit": {"patch"},
    "files": {"expect"},
    "cgroup": {"expect"},
    "clean": set(),
    "sleep": {"seconds"},
}
DEFAULT_STEPS: list[Any] = ["create", "start", "wait", "delete"]
ROOTFS_MODES = {"auto", "copy", "shared"}
REQUIREMENT_KEYS = {
    "namespace",
    "feature",
    "mount_option",
    "host_path",
    "no_host_path",
    "any_host_path",
    "controller",
    "cgroup",
}


class CaseDataError(Exception):
    """A case document is malformed; the suite itself is wrong."""


@dataclass
class Step:
    op: str
    args: dict[str, Any]
    index: int

    def describe(self) -> str:
        ctr = self.args.get("ctr")
        return f"step {self.index + 1} ({self.op}{' ' + ctr if ctr else ''})"


@dataclass
class Case:
    name: str
    spec: str
    what: str
    source: str
    config: dict[str, Any] = field(default_factory=dict)
    containers: dict[str, dict[str, Any]] = field(default_factory=dict)
    rootfs: str = "auto"
    probe: str | None = None
    steps: list[Step] = field(default_factory=list)
    requires: list[dict[str, Any]] = field(default_factory=list)
    deviations: dict[str, str] = field(default_factory=dict)
    cleanup: str | None = None


def parse_step(raw: Any, index: int, where: str) -> Step:
    if isinstance(raw, str):
        op, args = raw, {}
    elif isinstance(raw, dict) and len(raw) == 1:
        op, args = next(iter(raw.items()))
        args = {} if args is None else args
    else:
        raise CaseDataError(f"{where}: step {index + 1} must be a name or a one-key mapping")
    if op not in STEP_KEYS:
        raise CaseDataError(f"{where}: unknown step {op!r}")
    if op == "host" and isinstance(args, str):
        args = {"script": args}
    if not isinstance(args, dict):
        raise CaseDataError(f"{where}: step {op} takes a mapping")
    unknown = set(args) - STEP_KEYS[op] - COMMON_STEP_KEYS
    if unknown:
        raise CaseDataError(f"{where}: step {op} has unknown keys {sorted(unknown)}")
    return Step(op, args, index)


def default_steps(doc: dict[str, Any]) -> list[Any]:
    steps = list(DEFAULT_STEPS)
    if "expect" in doc:
        steps[2] = {"wait": doc["expect"]}
    return steps


def check_document(doc: Any, where: str) -> None:
    if not isinstance(doc, dict):
        raise CaseDataError(f"{where}: a case must be a mapping")
    missing = REQUIRED_CASE_KEYS - set(doc)
    unknown = set(doc) - CASE_KEYS
    if missing or unknown:
        raise CaseDataError(f"{where}: missing {sorted(missing)}, unknown {sorted(unknown)}")
    if "steps" in doc and "expect" in doc:
        raise CaseDataError(f"{where}: 'expect' applies to the default steps only")
    if doc.get("rootfs", "auto") not in ROOTFS_MODES:
        raise CaseDataError(f"{where}: rootfs must be one of {sorted(ROOTFS_MODES)}")
    for req in doc.get("requires", []):
        if not isinstance(req, dict) or len(req) != 1 or set(req) - REQUIREMENT_KEYS:
            raise CaseDataError(f"{where}: bad requirement {req!r}")


def case_from_document(doc: Any, source: str) -> Case:
    where = f"{source}: {doc.get('name', '?') if isinstance(doc, dict) else '?'}"
    check_document(doc, where)
    raw_steps = doc.get("steps") or default_steps(doc)
    return Case(
        name=doc["name"],
        spec=doc["spec"],
        what=doc["what"],
        source=source,
        config=doc.get("config") or {},
        containers=doc.get("containers") or {},
        rootfs=doc.get("rootfs", "auto"),
        probe=doc.get("probe"),
        steps=[parse_step(raw, i, where) for i, raw in enumerate(raw_steps)],
        requires=doc.get("requires") or [],
        deviations=doc.get("deviations") or {},
        cleanup=doc.get("cleanup"),
    )


def spec_headings(spec_dir: Path, filename: str) -> set[str]:
    path = spec_dir / filename
    if not path.is_file():
        return set()
    headings = set()
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            text = re.sub(r"<a name=\"[^\"]*\"\s*/>", "", line.lstrip("#")).strip()
            headings.add(text)
    return headings


def check_spec_reference(case: Case, spec_dir: Path | None) -> None:
    filename, _, heading = case.spec.partition("#")
    if not heading:
        raise CaseDataError(f"{case.source}: {case.name}: spec must be FILE#Heading")
    if spec_dir is None or not spec_dir.is_dir():
        return
    if heading not in spec_headings(spec_dir, filename):
        raise CaseDataError(f"{case.source}: {case.name}: no heading {heading!r} in {filename}")


def load_cases(cases_dir: Path, spec_dir: Path | None) -> list[Case]:
    cases: list[Case] = []
    for path in sorted(cases_dir.glob("*.yaml")):
        with path.open() as f:
            for doc in yaml.safe_load_all(f):
                if doc is not None:
                    cases.append(case_from_document(doc, path.name))
    names: set[str] = set()
    for case in cases:
        if case.name in names:
            raise CaseDataError(f"{case.source}: duplicate case name {case.name}")
        names.add(case.name)
        check_spec_reference(case, spec_dir)
    return cases
