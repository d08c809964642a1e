"""The lifecycle steps a case lists, each run against the runtime or the host."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from . import host
from .config import merge_patch
from .console import ConsoleSocket
from .context import CaseRun, CaseSkip, Slot, write_config
from .match import Mismatch, check_text, check_value, short
from .model import Step
from .runtime import Call, Result
from .schema import schema_errors

LEAKED_FD = 42


class StepFailure(Exception):
    def __init__(self, step: Step, expected: str, seen: str) -> None:
        super().__init__(f"{step.describe()}: expected {expected}, saw {seen}")
        self.step = step
        self.expected = expected
        self.seen = seen


def timeout_of(run: CaseRun, step: Step) -> float:
    return float(step.args.get("timeout", run.session.timeout))


def container_id(run: CaseRun, step: Step, slot: Slot) -> list[str]:
    """The id argument: the slot's id, a rendered override, or none at all (null)."""
    if "id" not in step.args:
        return [slot.id]
    value = step.args["id"]
    return [] if value is None else [str(run.render(value))]


def expect_outcome(step: Step, result: Result) -> None:
    wanted = step.args.get("ok", True)
    if result.timed_out:
        raise StepFailure(step, "the runtime to finish", result.summary())
    if wanted == "any":
        return
    if wanted and result.rc != 0:
        raise StepFailure(step, "success", result.summary())
    if not wanted and result.rc == 0:
        raise StepFailure(step, "an error (non-zero exit)", "exit 0")


def expect_duration(step: Step, result: Result) -> None:
    limit = step.args.get("max_seconds")
    if limit is not None and result.seconds > float(limit):
        raise StepFailure(step, f"to return within {limit}s", f"{result.seconds:.1f}s")


def read_pid(slot: Slot) -> None:
    try:
        slot.pid = int(slot.pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    slot.pid_start = host.start_time(slot.pid)


def refresh(slot: Slot) -> None:
    """Reap the container process if it exited, as a manager (shim) would."""
    if slot.pid is not None and slot.exit is None:
        exited, status = host.reap(slot.pid)
        if exited and status is not None:
            slot.exit = status


@contextmanager
def container_stdio(slot: Slot) -> Iterator[tuple[IO[Any], IO[Any]]]:
    with slot.stdout.open("ab") as out, slot.stderr.open("ab") as err:
        yield out, err


@contextmanager
def leaked_fd(wanted: bool) -> Iterator[tuple[int, ...]]:
    """Hold a descriptor open without close-on-exec, as a careless caller would."""
    if not wanted:
        yield ()
        return
    fd = os.open("/dev/null", os.O_RDONLY)
    os.dup2(fd, LEAKED_FD, inheritable=True)
    os.close(fd)
    try:
        yield (LEAKED_FD,)
    finally:
        os.close(LEAKED_FD)


def bundle_args(run: CaseRun, step: Step, slot: Slot) -> list[str]:
    if "bundle" not in step.args:
        return ["--bundle", str(slot.bundle)]
    value = step.args["bundle"]
    return [] if value is None else ["--bundle", str(run.render(value))]


def console_args(run: CaseRun, slot: Slot) -> list[str]:
    if not run.terminal(slot):
        return []
    path = slot.bundle / "console.sock"
    slot.console = ConsoleSocket(path, slot.stdout, run.session.timeout)
    return ["--console-socket", str(path)]


def step_cwd(run: CaseRun, step: Step, slot: Slot) -> Path:
    if "cwd" in step.args:
        return Path(str(run.render(step.args["cwd"])))
    empty = slot.bundle / "cwd"
    empty.mkdir(exist_ok=True)
    return empty


def op_create(run: CaseRun, step: Step) -> None:
    slot = run.slot(step.args.get("ctr"))
    run.prepare(slot)
    slot.used = True
    args = ["create", *bundle_args(run, step, slot), "--pid-file", str(slot.pid_file)]
    args += console_args(run, slot) + container_id(run, step, slot)
    with container_stdio(slot) as (out, err), leaked_fd(bool(step.args.get("leak_fd"))) as fds:
        call = Call(args, timeout_of(run, step), step_cwd(run, step, slot), out, err, fds)
        call.caller = step.args.get("caller") or {}
        result = run.session.runtime.call(call)
    result.stderr = slot.stderr.read_text(errors="replace")
    if result.rc == 0 and "id" not in step.args:
        read_pid(slot)
    expect_outcome(step, result)
    expect_duration(step, result)


def simple_call(run: CaseRun, step: Step, args: list[str]) -> Result:
    result = run.session.runtime.call(Call(args, timeout_of(run, step)))
    expect_outcome(step, result)
    return result


def op_start(run: CaseRun, step: Step) -> None:
    slot = run.slot(step.args.get("ctr"))
    result = simple_call(run, step, ["start", *container_id(run, step, slot)])
    expect_duration(step, result)


def op_kill(run: CaseRun, step: Step) -> None:
    slot = run.slot(step.args.get("ctr"))
    signal = str(step.args.get("signal", "TERM"))
    simple_call(run, step, ["kill", *container_id(run, step, slot), signal])


def op_delete(run: CaseRun, step: Step) -> None:
    slot = run.slot(step.args.get("ctr"))
    refresh(slot)
    force = ["--force"] if step.args.get("force") else []
    simple_call(run, step, ["delete", *force, *container_id(run, step, slot)])


def op_state(run: CaseRun, step: Step) -> None:
    slot = run.slot(step.args.get("ctr"))
    refresh(slot)
    result = simple_call(run, step, ["state", *container_id(run, step, slot)])
    if result.rc != 0:
        return
    check_document(run, step, result.stdout, "state-schema.json",
                   "the state as JSON", "a state that follows state-schema.json")  # fmt: skip


def op_features(run: CaseRun, step: Step) -> None:
    result = simple_call(run, step, ["features"])
    check_document(run, step, result.stdout, "features-schema.json",
                   "features as JSON", "features that follow features-schema.json")  # fmt: skip


def check_document(run: CaseRun, step: Step, text: str, schema: str, as_json: str,
                   follows_schema: str) -> None:  # fmt: skip
    """A runtime's JSON output: it parses, follows the spec's schema, and has what the step
    expects (as_json and follows_schema say what was wanted when it does not)."""
    try:
        document = json.loads(text)
    except ValueError:
        raise StepFailure(step, as_json, short(text)) from None
    errors = schema_errors(run.session.spec_dir, schema, document)
    if errors:
        raise StepFailure(step, follows_schema, "; ".join(errors))
    check(step, lambda: check_value(run.render(step.args.get("expect") or {}), document, ""))


def op_run(run: CaseRun, step: Step) -> None:
    slot = run.slot(step.args.get("ctr"))
    run.prepare(slot)
    slot.used = True
    args = ["run", "--bundle", str(slot.bundle), *container_id(run, step, slot)]
    with container_stdio(slot) as (out, err):
        call = Call(args, timeout_of(run, step), step_cwd(run, step, slot), out, err)
        result = run.session.runtime.call(call)
    if result.timed_out:
        raise StepFailure(step, "the runtime to finish", result.summary())
    want = step.args.get("exit", 0)
    if want != "any" and result.rc != want:
        seen = f"exit {result.rc}: {short(slot.stderr.read_text(errors='replace'))}"
        raise StepFailure(step, f"exit {want}", seen)
    check_output(run, step, slot)


def wait_for_exit(slot: Slot, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        exited, status = host.reap(slot.pid) if slot.pid else (True, None)
        if exited:
            slot.exit = status if slot.exit is None else slot.exit
            return True
        time.sleep(0.005)
    return False


def op_wait(run: CaseRun, step: Step) -> None:
    slot = run.slot(step.args.get("ctr"))
    if slot.pid is None:
        raise StepFailure(step, "a container pid (from --pid-file)", "none")
    if slot.exit is None and not wait_for_exit(slot, timeout_of(run, step)):
        raise StepFailure(step, "the container process to exit", "still running")
    if slot.console:
        slot.console.finish(timeout_of(run, step))
    want = step.args.get("exit", 0)
    if want != "any" and slot.exit is None and "exit" in step.args:
        raise StepFailure(step, f"exit {want}", "an exit status the suite cannot observe")
    if want != "any" and slot.exit is not None and slot.exit != want:
        seen = f"exit {slot.exit}; stdout {short(slot.stdout.read_text(errors='replace'))}"
        seen += f"; stderr {short(slot.stderr.read_text(errors='replace'))}"
        raise StepFailure(step, f"exit {want}", seen)
    check_output(run, step, slot)


def check_output(run: CaseRun, step: Step, slot: Slot) -> None:
    for stream, path in (("stdout", slot.stdout), ("stderr", slot.stderr)):
        if stream in step.args:
            text = path.read_text(errors="replace") if path.exists() else ""
            check(step, lambda t=text, s=stream: check_text(run.render(step.args[s]), t))


def check(step: Step, fn: Callable[[], None]) -> None:
    try:
        fn()
    except Mismatch as m:
        raise StepFailure(step, m.expected, m.seen) from None


def op_host(run: CaseRun, step: Step) -> None:
    script = str(run.render(step.args["script"]))
    try:
        proc = subprocess.run(
            ["/bin/sh", "-c", script], capture_output=True, timeout=timeout_of(run, step)
        )
    except subprocess.TimeoutExpired:
        raise StepFailure(step, "the host command to finish", "a timeout") from None
    out, err = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    want = step.args.get("exit", 0)
    if want != "any" and proc.returncode != want:
        seen = f"exit {proc.returncode} from {short(script, 120)}: {short(out + err)}"
        raise StepFailure(step, f"host command exit {want}", seen)
    if "stdout" in step.args:
        check(step, lambda: check_text(run.render(step.args["stdout"]), out))


def op_edit(run: CaseRun, step: Step) -> None:
    slot = run.slot(step.args.get("ctr"))
    config = json.loads((slot.bundle / "config.json").read_text())
    write_config(slot.bundle, merge_patch(config, run.render(step.args["patch"])))


def op_files(run: CaseRun, step: Step) -> None:
    slot = run.slot(step.args.get("ctr"))
    for name, expected in run.render(step.args["expect"]).items():
        path = slot.bundle / name
        if isinstance(expected, dict) and "exists" in expected:
            if path.exists() != expected["exists"]:
                raise StepFailure(step, f"{name} exists: {expected['exists']}", str(path.exists()))
            continue
        if not path.is_file():
            raise StepFailure(step, f"a file {name}", "none")
        check(step, lambda e=expected, p=path: check_text(e, p.read_text(errors="replace")))


def op_cgroup(run: CaseRun, step: Step) -> None:
    slot = run.slot(step.args.get("ctr"))
    if slot.pid is None:
        raise StepFailure(step, "a container pid", "none")
    for controller, versions in run.render(step.args["expect"]).items():
        hierarchy = host.controller_hierarchy(controller)
        if hierarchy is None:
            raise CaseSkip(f"host has no {controller} cgroup controller")
        files = versions.get(f"v{hierarchy.version}")
        if files is None:
            raise CaseSkip(f"no cgroup v{hierarchy.version} file for this {controller} setting")
        directory = host.process_cgroup(slot.pid, hierarchy)
        if directory is None:
            raise StepFailure(step, f"pid {slot.pid} in a {controller} cgroup", "none")
        for name, expected in files.items():
            check_cgroup_file(step, directory / name, expected)


def check_cgroup_file(step: Step, path: Path, expected: Any) -> None:
    if not path.exists():
        raise CaseSkip(f"host kernel has no cgroup file {path.name}")
    try:
        text = path.read_text()
    except OSError as e:
        raise StepFailure(step, f"a readable {path}", str(e)) from None
    check(step, lambda: check_text(expected, text))


def op_clean(run: CaseRun, step: Step) -> None:
    """Nothing of the container is left: no process, cgroup, or mount on its rootfs."""
    slot = run.slot(step.args.get("ctr"))
    refresh(slot)
    if (
        slot.pid is not None
        and host.alive(slot.pid)
        and host.start_time(slot.pid) == slot.pid_start
    ):
        raise StepFailure(step, "the container process gone", f"pid {slot.pid} alive")
    dirs = host.cgroup_dirs(slot.cgroup)
    if dirs:
        raise StepFailure(step, "its cgroups removed", ", ".join(map(str, dirs)))
    mounts = host.mounts_under(Path(run.rootfs_path(slot)))
    if mounts:
        raise StepFailure(step, "no host mounts on its rootfs", ", ".join(mounts))


def op_sleep(run: CaseRun, step: Step) -> None:
    time.sleep(float(step.args.get("seconds", 0.2)))


OPS: dict[str, Callable[[CaseRun, Step], None]] = {
    "create": op_create,
    "start": op_start,
    "kill": op_kill,
    "delete": op_delete,
    "state": op_state,
    "features": op_features,
    "run": op_run,
    "wait": op_wait,
    "host": op_host,
    "edit": op_edit,
    "files": op_files,
    "cgroup": op_cgroup,
    "clean": op_clean,
    "sleep": op_sleep,
}


def execute(run: CaseRun, step: Step) -> None:
    OPS[step.op](run, step)
