"""Running one case: requirements, its steps, the verdict, and cleaning up after it."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field

from . import host
from .context import CaseRun, CaseSkip, Session, remove_tree
from .model import Case
from .requires import unmet
from .runtime import Call
from .steps import StepFailure, execute
from .template import TemplateError


@dataclass
class Outcome:
    case: Case
    result: str  # pass, fail, skip, deviation
    reason: str = ""
    expected: str = ""
    seen: str = ""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        label = {"pass": "ok", "fail": "FAIL", "skip": "skip", "deviation": "dev"}[self.result]
        text = f"{label:5} {self.case.name}"
        if self.reason:
            text += f": {self.reason}"
        for note in self.notes:
            text += f" [{note}]"
        return text


def run_case(session: Session, case: Case) -> Outcome:
    reason = unmet(case.requires, session.runtime.features)
    if reason:
        return Outcome(case, "skip", reason)
    began = time.monotonic()
    try:
        run = CaseRun.begin(session, case)
    except Exception as error:  # its directory goes with the session's temp dir
        return Outcome(case, "fail", f"suite error: {type(error).__name__}: {error}")
    try:
        outcome = run_steps(run)
    except Exception as error:  # a bug in the suite must not stop the run or its cleanup
        outcome = Outcome(case, "fail", f"suite error: {type(error).__name__}: {error}")
    finally:
        notes = clean_up(run)
    outcome.seconds = time.monotonic() - began
    outcome.notes += notes
    return judge(session, outcome)


def run_steps(run: CaseRun) -> Outcome:
    case = run.case
    try:
        for step in case.steps:
            execute(run, step)
    except CaseSkip as skip:
        return Outcome(case, "skip", str(skip))
    except StepFailure as failure:
        return Outcome(case, "fail", str(failure), failure.expected, failure.seen)
    except TemplateError as error:
        return Outcome(case, "fail", f"case data error: {error}")
    return Outcome(case, "pass")


def judge(session: Session, outcome: Outcome) -> Outcome:
    """Apply the case's known deviations for this runtime."""
    runtime = session.runtime
    reasons = [why for key, why in outcome.case.deviations.items() if runtime.matches(key)]
    if not reasons:
        return outcome
    if outcome.result == "fail":
        outcome.notes.insert(0, outcome.reason)
        outcome.result, outcome.reason = "deviation", reasons[0]
    elif outcome.result == "pass":
        outcome.notes.append(f"known deviation not seen: {reasons[0]}")
    return outcome


def clean_up(run: CaseRun) -> list[str]:
    """Force-delete, kill, unmount and remove whatever the case's containers left."""
    session = run.session
    used = [slot for slot in run.slots.values() if slot.used]
    for slot in used:
        session.runtime.call(Call(["delete", "--force", slot.id], session.timeout))
    pids = host.processes_rooted_under(run.directory) | host.processes_rooted_under(session.rootfs)
    for slot in used:
        if slot.pid and slot.process_alive():
            pids.add(slot.pid)
        for directory in host.cgroup_dirs(slot.cgroup):
            pids |= host.cgroup_procs(directory)
    host.kill_and_reap(pids)
    for slot in used:
        if slot.console:
            slot.console.finish(1)
    run_cleanup_script(run)
    for slot in used:
        for directory in host.cgroup_dirs(slot.cgroup):
            host.remove_cgroup_tree(directory)
        remove_tree(session.runtime.root / slot.id)
    remove_tree(run.directory)
    host.reap_orphans()
    return leftovers(run)


def leftovers(run: CaseRun) -> list[str]:
    """What even the suite's cleanup could not remove."""
    notes = [f"left cgroup {d}" for s in run.slots.values() for d in host.cgroup_dirs(s.cgroup)]
    notes += [f"left mount {m}" for m in host.mounts_under(run.directory)]
    notes += [f"left process {p}" for p in host.processes_rooted_under(run.directory)]
    return notes


def run_cleanup_script(run: CaseRun) -> None:
    if not run.case.cleanup:
        return
    try:
        script = str(run.render(run.case.cleanup))
    except (TemplateError, CaseSkip):
        return
    subprocess.run(["/bin/sh", "-c", script], capture_output=True, timeout=run.session.timeout)
