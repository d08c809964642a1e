"""conformance/run: drive an OCI runtime through its CLI and check it against the spec."""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from types import FrameType

from . import host
from .context import Session, build_rootfs, make_temp_root, remove_tree
from .model import Case, CaseDataError, load_cases
from .runner import Outcome, run_case
from .runtime import Call, Runtime

HERE = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="conformance/run", description=__doc__)
    parser.add_argument("--runtime", required=True, help="path of the runtime binary")
    parser.add_argument("-k", dest="pattern", help="only cases whose name contains PATTERN")
    parser.add_argument("--json", type=Path, help="write the results to FILE as JSON")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per step")
    parser.add_argument("--cases", type=Path, default=HERE / "cases")
    parser.add_argument("--spec-dir", type=Path, default=Path("/work/shared/oci-runtime-spec"))
    parser.add_argument("--make-rootfs", type=Path, default=HERE.parent / "bundles/make-rootfs")
    parser.add_argument("--list", action="store_true", help="list the selected cases and exit")
    return parser.parse_args(argv)


def selected(cases: list[Case], pattern: str | None) -> list[Case]:
    if not pattern:
        return cases
    if any(c in pattern for c in "*?["):
        return [c for c in cases if fnmatch.fnmatch(c.name, pattern)]
    return [c for c in cases if pattern in c.name]


def interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def open_session(args: argparse.Namespace, tmp: Path) -> Session:
    runtime = Runtime(os.path.abspath(args.runtime), tmp / "state")
    rootfs = tmp / "rootfs"
    build_rootfs(rootfs, args.make_rootfs)
    spec_dir = args.spec_dir if args.spec_dir.is_dir() else None
    prefix = f"/conformance-{os.getpid()}"
    return Session(runtime, tmp, rootfs, prefix, spec_dir, args.timeout)


def close_session(session: Session) -> None:
    """Last resort for what cases could not clean: containers, processes, mounts, cgroups."""
    root = session.runtime.root
    for state in root.iterdir() if root.is_dir() else []:
        session.runtime.call(Call(["delete", "--force", state.name], session.timeout))
    host.kill_and_reap(host.processes_rooted_under(session.tmp))
    for directory in host.cgroup_dirs(session.cgroup_prefix):
        host.kill_and_reap(host.cgroup_procs(directory))
        host.remove_cgroup_tree(directory)
    remove_tree(session.tmp)
    host.reap_orphans()


def run_all(session: Session, cases: list[Case], outcomes: list[Outcome]) -> None:
    for case in cases:
        outcome = run_case(session, case)
        print(outcome.line(), flush=True)
        outcomes.append(outcome)


def write_json(path: Path, session: Session, outcomes: list[Outcome]) -> None:
    report = {
        "runtime": session.runtime.path,
        "version": session.runtime.version,
        "cases": [
            {
                "name": o.case.name,
                "file": o.case.source,
                "spec": o.case.spec,
                "result": o.result,
                "reason": o.reason,
                "expected": o.expected,
                "seen": o.seen,
                "notes": o.notes,
                "seconds": round(o.seconds, 3),
            }
            for o in outcomes
        ],
    }
    path.write_text(json.dumps(report, indent=2) + "\n")


def first_line(text: str) -> str:
    return text.splitlines()[0] if text else "no --version output"


def summary(outcomes: list[Outcome], seconds: float) -> tuple[str, int]:
    """Print the totals before the last line; return that line and the number of failures."""
    counts = Counter(o.result for o in outcomes)
    if counts["deviation"]:
        print(f"known deviations of this runtime: {counts['deviation']} (counted as skipped)")
    print(f"time: {seconds:.1f}s")
    passed, failed = counts["pass"], counts["fail"]
    skipped = counts["skip"] + counts["deviation"]
    return f"conformance: {passed} passed, {failed} failed, {skipped} skipped", failed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        cases = selected(load_cases(args.cases, args.spec_dir), args.pattern)
    except CaseDataError as error:
        print(f"conformance: bad case data: {error}", file=sys.stderr)
        return 2
    if args.list:
        for case in cases:
            print(f"{case.name}  ({case.spec})")
        return 0
    if os.geteuid() != 0:
        print("conformance: must run as root", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, interrupt)
    host.become_subreaper()
    began = time.monotonic()
    tmp = make_temp_root()
    outcomes: list[Outcome] = []
    session = None
    interrupted = False
    try:
        session = open_session(args, tmp)
        print(f"runtime: {session.runtime.path} ({first_line(session.runtime.version)})")
        run_all(session, cases, outcomes)
    except KeyboardInterrupt:
        interrupted = True
        print("conformance: interrupted; cleaning up", flush=True)
    finally:
        if session is not None:
            close_session(session)
        else:
            remove_tree(tmp)
    if args.json and session is not None:
        write_json(args.json, session, outcomes)
    line, failed = summary(outcomes, time.monotonic() - began)
    print(line)
    if interrupted:
        return 130
    return 0 if failed == 0 else 1
