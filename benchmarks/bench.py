"""Measure OCI runtimes (ocirun, runc, ...) side by side; see benchmarks/README.md.

Usage: .venv/bin/python benchmarks/bench.py [--runtime NAME=PATH|NAME=pip:DIR ...] [--rounds N]
       [--warmup N] [--json FILE] [--only run,cycle,light,serial,parallel,memory,minmem]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import itertools
import json
import os
import re
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MAKE_ROOTFS = REPO / "bundles" / "make-rootfs"
PIP = "pip:"  # a runtime given as pip:DIR is DIR pip-installed into a fresh venv
DEFAULT_RUNTIMES = [f"ocirun={PIP}{REPO}", "runc=/usr/sbin/runc"]
SPEC_GENERATOR = "/usr/sbin/runc"
TIME = "/usr/bin/time"
ITEMS = ("run", "cycle", "light", "serial", "parallel", "memory", "minmem")
LIGHT_COMMANDS = ("state", "start", "kill", "delete")

KIB = 1024
MIB = 1024 * KIB
COMMAND_TIMEOUT = 60.0
EXIT_TIMEOUT = 10.0
SERIAL_COUNT = 100
PARALLEL_LOOPS = 10
PARALLEL_PER_LOOP = 5
PARALLEL_ROUNDS = 3
MINMEM_LOW = 256 * KIB
MINMEM_HIGH = 16 * MIB
MINMEM_STEP = 64 * KIB
MINMEM_TRIES = 3
MEMORY_COMMANDS = ("create", "start", "state", "kill", "delete", "run")

Result = dict[str, Any]


class BenchError(Exception):
    """A runtime command failed; the item is reported as an error for that runtime."""


# --- running commands ---------------------------------------------------------------------


@dataclass
class Call:
    """One finished command: wall time, exit code, output and, if asked for, peak RSS."""

    seconds: float
    returncode: int
    stdout: str
    stderr: str
    peak_rss_kib: int | None = None
    cpu_seconds: float = 0.0  # user + sys of the command and the children it waited for

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def error(self, what: str) -> str:
        lines = self.stderr.strip().splitlines()
        return f"{what}: exit {self.returncode}: {lines[-1] if lines else '(no stderr)'}"


def execute(argv: list[str], peak_rss: bool = False) -> Call:
    """Run argv without a shell; time only spawn-to-reap with perf_counter.

    Output goes to temporary files rather than pipes: a detached container inherits the
    runtime's stdio and would keep a pipe open long after the runtime exits.
    """
    if peak_rss:
        return execute_with_time(argv)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, out.fileno(), 1),
            (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
        ]
        start = time.perf_counter()
        try:
            pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
        except OSError as exc:
            return Call(0.0, 127, "", f"cannot execute {argv[0]}: {exc.strerror}")
        finished = wait_exit(pid, COMMAND_TIMEOUT)
        _, status, usage = os.wait4(pid, 0)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
        if not finished:
            stderr += f"\nkilled after {COMMAND_TIMEOUT:.0f} s"
        stdout = out.read().decode(errors="replace")
        code = os.waitstatus_to_exitcode(status)
        return Call(seconds, code, stdout, stderr, cpu_seconds=usage.ru_utime + usage.ru_stime)


def execute_with_time(argv: list[str]) -> Call:
    """execute() under `/usr/bin/time -f %M`, for the peak RSS of the command.

    Our own ru_maxrss of the child is useless here: posix_spawn's child shares (vfork) or
    copies (fork) this Python process's memory, whose high-water mark it keeps after exec.
    """
    with tempfile.NamedTemporaryFile(mode="r") as report:
        call = execute([TIME, "-f", "%M", "-o", report.name, *argv])
        lines = report.read().split()
    if call.returncode != 127 and lines and lines[-1].isdigit():
        call.peak_rss_kib = int(lines[-1])
    return call


def wait_exit(pid: int, timeout: float) -> bool:
    """Block until pid exits (True) or kill it after timeout (False); it is left to reap."""
    pidfd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    if not ready:
        os.kill(pid, signal.SIGKILL)
    return bool(ready)


def checked(call: Call, what: str) -> Call:
    if not call.ok:
        raise BenchError(call.error(what))
    return call


# --- workspace: rootfs, bundles, state dirs, cgroups and their cleanup -----------------------


@dataclass
class Runtime:
    name: str
    path: str
    root: Path
    interpreter: str | None = None  # the venv's python, for a runtime that is a Python script

    def argv(self, *args: str) -> list[str]:
        return [self.path, "--root", str(self.root), *args]


def venv_python(runtime_path: str) -> str | None:
    """The python of the venv whose bin holds the runtime (symlinks followed), if it is in one."""
    bin_dir = Path(runtime_path).resolve().parent
    python = bin_dir / "python"
    return str(python) if (bin_dir.parent / "pyvenv.cfg").is_file() and python.exists() else None


def pip_install(source: str, venv: Path) -> str:
    """pip-install the project at source (with its dependencies) into a fresh venv made with
    this interpreter's base python; return the installed `ocirun`."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, source], check=True)
    return str(venv / "bin" / "ocirun")


@dataclass
class Container:
    runtime: Runtime
    id: str
    bundle: Path


class Workspace:
    """A temp dir with the shared read-only rootfs, one bundle per container and one state
    dir per runtime, plus a cgroup prefix; cleanup() removes all of it."""

    def __init__(self, runtimes: dict[str, str]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ocirun-bench-"))
        self.rootfs = self.dir / "rootfs"
        self.cgroup_prefix = f"/ocirun-bench-{os.getpid()}"
        self.runtimes = [
            Runtime(name, path, self.dir / "state" / name) for name, path in runtimes.items()
        ]
        self.installed: dict[str, str] = {}  # name: what pip installed, for pip:DIR runtimes
        self._spec: dict[str, Any] = {}
        self._ids = itertools.count()
        self._live: dict[str, Container] = {}
        self._lock = threading.Lock()
        self.peak_rss = False  # run the runtime under /usr/bin/time (item memory)

    def prepare(self) -> None:
        for runtime in self.runtimes:
            if runtime.path.startswith(PIP):
                source = runtime.path.removeprefix(PIP)
                print(f"bench: pip install {source} into a fresh venv ...", file=sys.stderr)
                runtime.path = pip_install(source, self.dir / f"venv-{runtime.name}")
                self.installed[runtime.name] = runtime.path
            runtime.interpreter = venv_python(runtime.path)
        subprocess.run([str(MAKE_ROOTFS), str(self.rootfs)], check=True)
        self._spec = self._generate_spec()
        for runtime in self.runtimes:
            runtime.root.mkdir(parents=True)
        (self.dir / "bundles").mkdir()

    def _generate_spec(self) -> dict[str, Any]:
        """`runc spec` output (falling back to another runtime's `spec`)."""
        target = self.dir / "spec"
        target.mkdir()
        for generator in [SPEC_GENERATOR, *(runtime.path for runtime in self.runtimes)]:
            if execute([generator, "spec", "--bundle", str(target)]).ok:
                return json.loads((target / "config.json").read_text())
        raise SystemExit("bench: no runtime could generate a spec (`runc spec`)")

    def container(
        self, runtime: Runtime, tag: str, args: list[str], memory_limit: int | None = None
    ) -> Container:
        """A fresh bundle with its own config.json, unique id and unique cgroup."""
        ident = f"{tag}-{runtime.name}-{next(self._ids)}"
        spec = copy.deepcopy(self._spec)
        spec["process"]["terminal"] = False
        spec["process"]["args"] = args
        spec["root"] = {"path": str(self.rootfs), "readonly": True}
        spec["linux"]["cgroupsPath"] = f"{self.cgroup_prefix}/{ident}"
        if memory_limit is not None:
            resources = spec["linux"].setdefault("resources", {})
            resources["memory"] = {"limit": memory_limit, "swap": memory_limit}
        bundle = self.dir / "bundles" / ident
        bundle.mkdir()
        (bundle / "config.json").write_text(json.dumps(spec))
        return Container(runtime, ident, bundle)

    def run(self, ctr: Container) -> Call:
        self._track(ctr)
        call = execute(ctr.runtime.argv("run", "--bundle", str(ctr.bundle), ctr.id), self.peak_rss)
        if call.ok:
            self._untrack(ctr)
        return call

    def create(self, ctr: Container, pid_file: Path | None = None) -> Call:
        self._track(ctr)
        extra = ["--pid-file", str(pid_file)] if pid_file else []
        return execute(
            ctr.runtime.argv("create", "--bundle", str(ctr.bundle), *extra, ctr.id), self.peak_rss
        )

    def command(self, ctr: Container, verb: str, *extra: str) -> Call:
        return execute(ctr.runtime.argv(verb, ctr.id, *extra), self.peak_rss)

    def delete(self, ctr: Container, force: bool = True) -> Call:
        call = execute(
            ctr.runtime.argv("delete", *(["--force"] if force else []), ctr.id), self.peak_rss
        )
        if call.ok:
            self._untrack(ctr)
        return call

    def discard(self, ctr: Container) -> None:
        """Force-delete the container if it may still exist, then remove its bundle."""
        if ctr.id in self._live:
            self.delete(ctr)
        shutil.rmtree(ctr.bundle, ignore_errors=True)  # config.json and a pid file, no mounts

    def _track(self, ctr: Container) -> None:
        with self._lock:
            self._live[ctr.id] = ctr

    def _untrack(self, ctr: Container) -> None:
        with self._lock:
            self._live.pop(ctr.id, None)

    def cleanup(self) -> list[str]:
        """Delete every container, cgroup and directory created; return what is left over."""
        for ctr in list(self._live.values()):
            self.delete(ctr)
        for runtime in self.runtimes:
            for entry in runtime.root.iterdir() if runtime.root.is_dir() else ():
                execute(runtime.argv("delete", "--force", entry.name))
        leftovers = [str(top) for top in cgroup_tops(self.cgroup_prefix) if not remove_cgroup(top)]
        leftovers += unmount_under(self.dir)
        if not leftovers:
            remove_tree(self.dir)
        return leftovers


def remove_tree(path: Path) -> None:
    """rm -rf that never crosses into another file system (a mount left inside)."""
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)


def cgroup_tops(prefix: str) -> list[Path]:
    """The prefix directory in every hierarchy (v1 controllers, named, unified or pure v2)."""
    base = Path("/sys/fs/cgroup")
    name = prefix.strip("/")
    candidates = [base / name, *(hierarchy / name for hierarchy in base.iterdir())]
    return [path for path in candidates if path.is_dir()]


def remove_cgroup(top: Path) -> bool:
    """Kill what is still inside, then rmdir bottom-up (cgroup dirs hold only virtual files)."""
    deadline = time.monotonic() + EXIT_TIMEOUT
    while top.exists() and time.monotonic() < deadline:
        for dirpath, _, _ in os.walk(top, topdown=False):
            kill_cgroup(Path(dirpath))
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
        if top.exists():
            time.sleep(0.1)
    return not top.exists()


def kill_cgroup(path: Path) -> None:
    with contextlib.suppress(OSError):
        for pid in (path / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


def unmount_under(path: Path) -> list[str]:
    """Unmount anything mounted under path (deepest first); return mounts that stay."""
    for mount in sorted(mounts_under(path), key=len, reverse=True):
        subprocess.run(["umount", mount], check=False)
    return mounts_under(path)


def mounts_under(path: Path) -> list[str]:
    prefix = str(path)
    with open("/proc/self/mountinfo") as mountinfo:
        points = [unescape_mount(line.split()[4]) for line in mountinfo]
    return [point for point in points if point == prefix or point.startswith(prefix + "/")]


def unescape_mount(field_: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field_)


# --- CPU time of a runtime's whole process tree -------------------------------------------


class CpuMeter:
    """CPU time of everything started while the benchmark sits in <prefix>/bench.

    The benchmark moves itself into that cgroup of the cpuacct (v1) or unified (v2)
    hierarchy, so a runtime command and every process it forks (waited for or not, before
    the container's init moves to its own cgroup) are charged to it, and the containers'
    cgroups, <prefix>/<id>, are its siblings: the usage of <prefix> counts both, and keeps
    what a removed child used. The benchmark's own CPU time over the same span is subtracted.
    """

    def __init__(self, prefix: str) -> None:
        self.mount, self.v1, own = cpu_hierarchy()
        self.home = self.mount / own.strip("/")
        self.top = self.mount / prefix.strip("/")
        self.leaf = self.top / "bench"

    def __enter__(self) -> CpuMeter:
        self.leaf.mkdir(parents=True, exist_ok=True)
        (self.leaf / "cgroup.procs").write_text(str(os.getpid()))
        return self

    def __exit__(self, *exc: object) -> None:
        (self.home / "cgroup.procs").write_text(str(os.getpid()))  # out before cleanup kills
        with contextlib.suppress(OSError):
            self.leaf.rmdir()

    def usage_ns(self) -> int:
        """CPU time of the subtree and of this process, which ends() subtracts again."""
        if self.v1:
            return int((self.top / "cpuacct.usage").read_text())
        for line in (self.top / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) * 1000
        raise BenchError(f"{self.top}/cpu.stat: no usage_usec")

    def start(self) -> tuple[int, float]:
        return self.usage_ns(), self_cpu_seconds()

    def ms_since(self, mark: tuple[int, float]) -> float:
        """CPU ms charged since mark, without the benchmark's own."""
        usage, own = mark
        return (self.usage_ns() - usage) / 1e6 - (self_cpu_seconds() - own) * 1000


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_hierarchy() -> tuple[Path, bool, str]:
    """(mount point, is v1, this process's cgroup in it) of the v1 cpuacct hierarchy if
    there is one, else of the unified one."""
    mounts = {}
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            fstype, options = fields[fields.index("-") + 1], fields[-1].split(",")
            if fstype == "cgroup" and "cpuacct" in options:
                mounts["cpuacct"] = Path(unescape_mount(fields[4]))
            elif fstype == "cgroup2":
                mounts.setdefault("", Path(unescape_mount(fields[4])))
    with open("/proc/self/cgroup") as cgroups:
        own = {
            controller: path
            for _, controllers, path in (line.rstrip("\n").split(":", 2) for line in cgroups)
            for controller in controllers.split(",")
        }
    for key in ("cpuacct", ""):
        if key in mounts and key in own:
            return mounts[key], bool(key), own[key]
    raise SystemExit("bench: no cpuacct or cgroup2 hierarchy to measure CPU time with")


# --- process inspection -------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM in KiB from /proc/PID/status."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError as exc:
        raise BenchError(f"init pid {pid}: {exc.strerror}") from exc
    values = {}
    for line in lines:
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    if len(values) != 2:
        raise BenchError(f"init pid {pid}: no VmRSS/VmHWM (exited?)")
    return values


def wait_gone(pid: int) -> None:
    """Wait until pid has exited (gone or a zombie not yet reaped by its new parent)."""
    deadline = time.monotonic() + EXIT_TIMEOUT
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return
        if stat.rpartition(")")[2].split()[0] in ("Z", "X"):
            return
        time.sleep(0.005)
    raise BenchError(f"init pid {pid} still alive {EXIT_TIMEOUT:.0f} s after kill KILL")


def container_status(call: Call) -> str:
    try:
        return str(json.loads(call.stdout)["status"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BenchError(f"state: unparsable output {call.stdout[:80]!r}") from exc


# --- alternating rounds -------------------------------------------------------------------


@dataclass
class Series:
    """Samples per named figure for one runtime, or the error that stopped it."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    error: str | None = None


def alternate(
    runtimes: list[Runtime],
    rounds: int,
    warmup: int,
    measure: Callable[[Runtime], dict[str, float]],
) -> dict[str, Series]:
    """Run measure for each runtime in turn (ABAB...), keeping the rounds after warm-up.

    A runtime whose measurement fails is dropped from the remaining rounds."""
    series = {runtime.name: Series() for runtime in runtimes}
    for index in range(warmup + rounds):
        for runtime in runtimes:
            current = series[runtime.name]
            if current.error:
                continue
            try:
                values = measure(runtime)
            except BenchError as exc:
                current.error = str(exc)
                continue
            if index >= warmup:
                for key, value in values.items():
                    current.samples.setdefault(key, []).append(value)
    return series


def summarize(series: Series) -> Result:
    if series.error:
        return {"error": series.error}
    return {
        key: {
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "samples": [round(value, 3) for value in values],
        }
        for key, values in series.samples.items()
    }


def cpu_ms(call: Call) -> float:
    return call.cpu_seconds * 1000


def ms(call: Call) -> float:
    return call.seconds * 1000


# --- the items ----------------------------------------------------------------------------


@dataclass
class Options:
    rounds: int
    warmup: int


def summarized_rounds(
    ws: Workspace, opts: Options, measure: Callable[[Runtime], dict[str, float]]
) -> dict[str, Result]:
    """Medians (and all samples) of measure over the rounds, alternating the runtimes."""
    series = alternate(ws.runtimes, opts.rounds, opts.warmup, measure)
    return {name: summarize(one) for name, one in series.items()}


def run_true(ws: Workspace, runtime: Runtime, tag: str, memory_limit: int | None = None) -> Call:
    ctr = ws.container(runtime, tag, ["true"], memory_limit)
    try:
        return ws.run(ctr)
    finally:
        ws.discard(ctr)


def item_run(ws: Workspace, opts: Options) -> dict[str, Result]:
    """1. `run` of a container running `true`."""

    def measure(runtime: Runtime) -> dict[str, float]:
        return {"ms": ms(checked(run_true(ws, runtime, "run"), "run"))}

    return summarized_rounds(ws, opts, measure)


def create_start_delete(ws: Workspace, ctr: Container) -> list[Call]:
    """create, start, delete --force as separate commands, stopping at the first failure."""
    calls = [ws.create(ctr)]
    for step in (lambda: ws.command(ctr, "start"), lambda: ws.delete(ctr)):
        if not calls[-1].ok:
            break
        calls.append(step())
    return calls


def item_cycle(ws: Workspace, opts: Options) -> dict[str, Result]:
    """2. create + start + delete --force; the total is the sum of the three, and the CPU
    time (user + sys) of everything the three started, the container's `true` included."""

    def measure(runtime: Runtime) -> dict[str, float]:
        ctr = ws.container(runtime, "cycle", ["true"])
        mark = meter.start()
        try:
            calls = create_start_delete(ws, ctr)
        finally:
            cpu = meter.ms_since(mark)
            ws.discard(ctr)
        for call, what in zip(calls, ("create", "start", "delete --force"), strict=False):
            checked(call, what)
        create, start, delete = (ms(call) for call in calls)
        return {
            "total_ms": create + start + delete,
            "create_ms": create,
            "start_ms": start,
            "delete_ms": delete,
            "cpu_ms": cpu,
        }

    with CpuMeter(ws.cgroup_prefix) as meter:
        return summarized_rounds(ws, opts, measure)


def item_light(ws: Workspace, opts: Options) -> dict[str, Result]:
    """3. The interpreter's own start (`python -S -c pass` of the runtime's venv), then
    start, state (running), kill KILL and delete (once stopped) of a `sleep 1000` container
    created untimed; margins are medians minus the interpreter's median, of the wall time
    and of the CPU time (wait4: these commands leave no process behind), which a loaded
    machine inflates far less."""

    def measure(runtime: Runtime) -> dict[str, float]:
        times = {}
        if runtime.interpreter:
            call = checked(execute([runtime.interpreter, "-S", "-c", "pass"]), "python -S")
            times["python_ms"], times["python_cpu_ms"] = ms(call), cpu_ms(call)
        ctr = ws.container(runtime, "light", ["sleep", "1000"])
        pid_file = ctr.bundle / "init.pid"
        try:
            checked(ws.create(ctr, pid_file), "create")
            pid = int(pid_file.read_text())
            calls = {"start": checked(ws.command(ctr, "start"), "start")}
            calls["state"] = checked(ws.command(ctr, "state"), "state")
            status = container_status(calls["state"])
            if status != "running":
                raise BenchError(f"state: status {status!r}, expected 'running'")
            calls["kill"] = checked(ws.command(ctr, "kill", "KILL"), "kill KILL")
            wait_gone(pid)
            calls["delete"] = checked(ws.delete(ctr, force=False), "delete")
        finally:
            ws.discard(ctr)
        for name, call in calls.items():
            times[f"{name}_ms"], times[f"{name}_cpu_ms"] = ms(call), cpu_ms(call)
        return times

    results = summarized_rounds(ws, opts, measure)
    for result in results.values():
        for figure in ("ms", "cpu_ms"):
            floor = lookup(result, (f"python_{figure}", "median"))
            if floor is not None:
                for name in LIGHT_COMMANDS:
                    above = result[f"{name}_{figure}"]["median"] - floor
                    result[f"{name}_above_python_{figure}"] = above
    return results


def item_serial(ws: Workspace, opts: Options) -> dict[str, Result]:
    """4. 100 containers one after another (`run true`), interleaved ABAB; total seconds."""

    def measure(runtime: Runtime) -> dict[str, float]:
        return {"ms": ms(checked(run_true(ws, runtime, "serial"), "run"))}

    series = alternate(ws.runtimes, SERIAL_COUNT, opts.warmup, measure)
    results = {}
    for name, one in series.items():
        samples = one.samples.get("ms", [])
        results[name] = (
            {"error": one.error, "completed": len(samples)}
            if one.error
            else {"containers": len(samples), "seconds": sum(samples) / 1000}
        )
    return results


@dataclass
class ParallelRound:
    seconds: float
    containers: int
    errors: list[str]


def parallel_round(ws: Workspace, runtime: Runtime) -> ParallelRound:
    """PARALLEL_LOOPS threads, each doing PARALLEL_PER_LOOP create/start/delete cycles."""
    loops = [
        [ws.container(runtime, "parallel", ["true"]) for _ in range(PARALLEL_PER_LOOP)]
        for _ in range(PARALLEL_LOOPS)
    ]
    errors: list[str] = []
    stop = threading.Event()

    def loop(containers: list[Container]) -> None:
        for ctr in containers:
            if stop.is_set():
                return
            calls = create_start_delete(ws, ctr)
            failed = [call for call in calls if not call.ok]
            if failed:
                errors.append(failed[0].error("create/start/delete"))

    threads = [threading.Thread(target=loop, args=(containers,)) for containers in loops]
    try:
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - start
    finally:
        stop.set()
        for thread in threads:
            if thread.ident is not None:
                thread.join()
        for ctr in itertools.chain.from_iterable(loops):
            ws.discard(ctr)
    return ParallelRound(seconds, PARALLEL_LOOPS * PARALLEL_PER_LOOP, errors)


def all_failed(one: ParallelRound) -> bool:
    """Every container of the round failed: the runtime does not work, stop measuring it."""
    return len(one.errors) == one.containers


def item_parallel(ws: Workspace, opts: Options) -> dict[str, Result]:
    """5. 10 create/start/delete loops at once; containers/s over all rounds, errors."""
    rounds: dict[str, list[ParallelRound]] = {runtime.name: [] for runtime in ws.runtimes}
    for _ in range(PARALLEL_ROUNDS):
        for runtime in ws.runtimes:
            done = rounds[runtime.name]
            if not (done and all_failed(done[-1])):
                done.append(parallel_round(ws, runtime))
    results = {}
    for name, done in rounds.items():
        seconds = sum(one.seconds for one in done)
        containers = sum(one.containers for one in done)
        errors = [error for one in done for error in one.errors]
        if all_failed(done[-1]):
            results[name] = {"error": errors[0], "errors": len(errors)}
            continue
        results[name] = {
            "containers": containers,
            "seconds": seconds,
            "per_second": containers / seconds,
            "round_per_second": [one.containers / one.seconds for one in done],
            "errors": len(errors),
            **({"first_error": errors[0]} if errors else {}),
        }
    return results


def item_memory(ws: Workspace, opts: Options) -> dict[str, Result]:
    """6. Peak RSS of each command (/usr/bin/time) and of the init waiting after create."""

    def measure(runtime: Runtime) -> dict[str, float]:
        ctr = ws.container(runtime, "memory", ["sleep", "1000"])
        pid_file = ctr.bundle / "init.pid"
        try:
            create = checked(ws.create(ctr, pid_file), "create")
            pid = int(pid_file.read_text())
            init = proc_status(pid)
            start = checked(ws.command(ctr, "start"), "start")
            state = checked(ws.command(ctr, "state"), "state")
            kill = checked(ws.command(ctr, "kill", "KILL"), "kill KILL")
            wait_gone(pid)
            delete = checked(ws.delete(ctr, force=False), "delete")
        finally:
            ws.discard(ctr)
        run = checked(run_true(ws, runtime, "memory"), "run")
        peaks = {}
        for name, call in zip(
            MEMORY_COMMANDS, (create, start, state, kill, delete, run), strict=True
        ):
            if call.peak_rss_kib is None:
                raise BenchError(f"{name}: no peak RSS from {TIME}")
            peaks[f"{name}_kib"] = call.peak_rss_kib
        return {**peaks, "init_vmrss_kib": init["VmRSS"], "init_vmhwm_kib": init["VmHWM"]}

    ws.peak_rss = True
    try:
        return summarized_rounds(ws, opts, measure)
    finally:
        ws.peak_rss = False


def smallest_limit(ws: Workspace, runtime: Runtime) -> Result:
    """Bisect the memory limit (swap = limit) under which `run true` succeeds every time
    (MINMEM_TRIES runs per probed limit: near the threshold a single run is a coin toss)."""
    probes: dict[int, list[Call]] = {}

    def works(limit: int) -> bool:
        if limit not in probes:
            tag = f"minmem{limit // KIB}k"
            probes[limit] = [run_true(ws, runtime, tag, limit) for _ in range(MINMEM_TRIES)]
        return all(call.ok for call in probes[limit])

    if not works(MINMEM_HIGH):
        failed = next(call for call in probes[MINMEM_HIGH] if not call.ok)
        return {"error": failed.error(f"run with {MINMEM_HIGH // MIB} MiB")}
    low, high = MINMEM_LOW, MINMEM_HIGH  # invariant: high works, low fails (or is the floor)
    if works(low):
        high = low
    while high - low > MINMEM_STEP:
        middle = (low + high) // 2 // MINMEM_STEP * MINMEM_STEP
        if works(middle):
            high = middle
        else:
            low = middle
    return {
        "min_limit_kib": high // KIB,
        "works_at_512kib": works(512 * KIB),
        "works_at_1mib": works(MIB),
        "successes_by_limit_kib": {
            str(limit // KIB): sum(call.ok for call in calls)
            for limit, calls in sorted(probes.items())
        },
    }


def item_minmem(ws: Workspace, opts: Options) -> dict[str, Result]:
    """7. Smallest memory limit for `run true` (256 KiB..16 MiB, 64 KiB steps), and 1 MiB."""
    return {runtime.name: smallest_limit(ws, runtime) for runtime in ws.runtimes}


ITEM_FUNCTIONS: dict[str, Callable[[Workspace, Options], dict[str, Result]]] = {
    "run": item_run,
    "cycle": item_cycle,
    "light": item_light,
    "serial": item_serial,
    "parallel": item_parallel,
    "memory": item_memory,
    "minmem": item_minmem,
}


# --- report -------------------------------------------------------------------------------

# (item, label, unit, path into the runtime's result)
ROWS: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("run", "run true", "ms", ("ms", "median")),
    ("cycle", "create+start+delete", "ms", ("total_ms", "median")),
    ("cycle", "  create", "ms", ("create_ms", "median")),
    ("cycle", "  start", "ms", ("start_ms", "median")),
    ("cycle", "  delete --force", "ms", ("delete_ms", "median")),
    ("cycle", "  CPU (user+sys)", "ms", ("cpu_ms", "median")),
    ("light", "python -S -c pass", "ms", ("python_ms", "median")),
    *(("light", f"{name}", "ms", (f"{name}_ms", "median")) for name in LIGHT_COMMANDS),
    *(("light", f"  {name} above python", "ms", (f"{name}_above_python_ms",))
      for name in LIGHT_COMMANDS),
    ("light", "python -S -c pass, CPU", "ms", ("python_cpu_ms", "median")),
    *(("light", f"  {name} CPU above python's", "ms", (f"{name}_above_python_cpu_ms",))
      for name in LIGHT_COMMANDS),
    ("serial", f"{SERIAL_COUNT} x run true", "s", ("seconds",)),
    ("parallel", f"{PARALLEL_LOOPS} parallel loops", "ctr/s", ("per_second",)),
    ("parallel", "  errors", "", ("errors",)),
    *(("memory", f"peak RSS {name}", "KiB", (f"{name}_kib", "median")) for name in MEMORY_COMMANDS),
    ("memory", "init VmRSS after create", "KiB", ("init_vmrss_kib", "median")),
    ("memory", "init VmHWM after create", "KiB", ("init_vmhwm_kib", "median")),
    ("minmem", "min memory limit", "KiB", ("min_limit_kib",)),
    ("minmem", "run true at 512 KiB", "", ("works_at_512kib",)),
    ("minmem", "run true at 1 MiB", "", ("works_at_1mib",)),
]  # fmt: skip


@dataclass
class Target:
    """A goal for the first runtime: its ratio to the second one's figure (`ratio`), or its
    own figure (`own`), compared with `limit` by `op` (<=, >= or ==)."""

    item: str
    path: tuple[str, ...]
    kind: str
    op: str
    limit: float | bool

    def text(self) -> str:
        limit = "yes" if self.limit is True else f"{self.limit:g}"
        return f"{self.op} {limit}{' ms' if self.kind == 'own' and self.op != '==' else ''}"

    def meets(self, value: float | bool) -> bool:
        if self.op == "<=":
            return value <= self.limit
        if self.op == ">=":
            return value >= self.limit
        return value == self.limit


TARGETS = [
    Target("run", ("ms", "median"), "ratio", "<=", 0.9),
    Target("cycle", ("total_ms", "median"), "ratio", "<=", 1.0),
    Target("cycle", ("cpu_ms", "median"), "ratio", "<=", 1.25),
    *(Target("light", (f"{name}_above_python_ms",), "own", "<=", 1.5)
      for name in ("state", "start", "kill")),
    Target("light", ("delete_above_python_ms",), "own", "<=", 2.5),
    Target("parallel", ("per_second",), "ratio", ">=", 0.9),
    Target("minmem", ("works_at_512kib",), "own", "==", True),
]  # fmt: skip


def lookup(result: Result | None, path: Iterable[str]) -> Any:
    value: Any = result
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def fmt(value: Any, unit: str) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            f"{value:.0f}" if unit == "KiB" else f"{value:.2f}" if unit == "s" else f"{value:.1f}"
        )
    return "-"


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def assess(results: dict[str, dict[str, Result]], names: list[str]) -> list[Result]:
    """Each target that could be checked: the first runtime's figure or its ratio to the
    second's, and whether it meets the target."""
    out = []
    for target in TARGETS:
        values = [lookup(results.get(target.item, {}).get(name), target.path) for name in names]
        if target.kind == "ratio":
            if len(values) < 2 or not all(is_number(v) for v in values[:2]) or not values[1]:
                continue
            value = values[0] / values[1]
        elif values and values[0] is not None:
            value = values[0]
        else:
            continue
        out.append({
            "item": target.item,
            "figure": "/".join(target.path),
            "of": f"{names[0]}/{names[1]}" if target.kind == "ratio" else names[0],
            "value": value,
            "target": target.text(),
            "meets": target.meets(value),
        })  # fmt: skip
    return out


def table(results: dict[str, dict[str, Result]], names: list[str]) -> str:
    ratio_of = f"{names[0]}/{names[1]}" if len(names) > 1 else ""
    header = ["", "unit", *names] + ([ratio_of] if ratio_of else []) + ["target"]
    lines = [header]
    verdicts = {(entry["item"], entry["figure"]): entry for entry in assess(results, names)}
    for item, label, unit, path in ROWS:
        if item not in results:
            continue
        per_runtime = [results[item][name] for name in names]
        values = [lookup(result, path) for result in per_runtime]
        cells = [
            "error" if "error" in result else fmt(value, unit)
            for result, value in zip(per_runtime, values, strict=True)
        ]
        row = [label, unit, *cells]
        if ratio_of:
            plain = all(is_number(v) for v in values[:2]) and values[1]
            row.append(f"{values[0] / values[1]:.2f}" if plain else "")
        verdict = verdicts.get((item, "/".join(path)))
        outcome = verdict and ("ok" if verdict["meets"] else "MISSED")
        row.append(f"{verdict['target']} {outcome}" if verdict else "")
        lines.append(row)
    widths = [max(len(line[col]) for line in lines) for col in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) if col == 0 else cell.rjust(width)
            for col, (cell, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    )


def error_lines(results: dict[str, dict[str, Result]]) -> list[str]:
    lines = []
    for item, per_runtime in results.items():
        for name, result in per_runtime.items():
            message = result.get("error") or result.get("first_error")
            if message:
                lines.append(f"{item} / {name}: {message}")
    return lines


# --- main ---------------------------------------------------------------------------------


def parse_runtimes(specs: list[str]) -> dict[str, str]:
    runtimes = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_.]+", name) or not path:
            raise SystemExit(f"bench: --runtime wants NAME=PATH (NAME of [A-Za-z0-9_.]): {spec}")
        if name in runtimes:
            raise SystemExit(f"bench: runtime {name} given twice")
        runtimes[name] = path
    return runtimes


def parse_items(text: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    unknown = sorted(set(items) - set(ITEMS))
    if unknown:
        raise SystemExit(f"bench: unknown item(s) {', '.join(unknown)}; known: {', '.join(ITEMS)}")
    return [item for item in ITEMS if item in items]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Measure OCI runtimes side by side.")
    parser.add_argument(
        "--runtime",
        action="append",
        metavar="NAME=PATH",
        help="runtime to measure, repeatable; PATH pip:DIR is the project at DIR pip-installed"
        " into a fresh venv (default: ocirun=pip:<this checkout> and runc=/usr/sbin/runc)",
    )
    parser.add_argument("--rounds", type=int, default=15, help="measured rounds (default 15)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up rounds (default 2)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write results as JSON")
    parser.add_argument("--only", default=",".join(ITEMS), help="comma-separated subset of items")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.warmup < 0:
        parser.error("--rounds must be >= 1 and --warmup >= 0")
    return args


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def load() -> str:
    """The 1, 5 and 15 minute load averages (the machine may be shared)."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def measure_items(
    ws: Workspace, items: list[str], opts: Options, loads: dict[str, list[str]]
) -> dict[str, dict[str, Result]]:
    """Run each item; loads gets the load averages before and after each."""
    results = {}
    for item in items:
        started = time.monotonic()
        loads[item] = [load()]
        print(f"bench: {item} (load {loads[item][0]}) ...", file=sys.stderr, flush=True)
        results[item] = ITEM_FUNCTIONS[item](ws, opts)
        loads[item].append(load())
        print(f"bench: {item} took {time.monotonic() - started:.1f} s", file=sys.stderr)
    return results


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    runtimes = parse_runtimes(args.runtime or DEFAULT_RUNTIMES)
    items = parse_items(args.only)
    opts = Options(args.rounds, args.warmup)
    for signum in STOP_SIGNALS:
        signal.signal(signum, interrupt)
    ws = Workspace(runtimes)
    loads: dict[str, list[str]] = {}
    try:
        ws.prepare()
        results = measure_items(ws, items, opts, loads)
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        for signum in STOP_SIGNALS:  # let the cleanup finish
            signal.signal(signum, signal.SIG_IGN)
        for leftover in ws.cleanup():
            print(f"bench: could not remove {leftover}", file=sys.stderr)
    names = list(runtimes)
    print(f"rounds {opts.rounds} (+{opts.warmup} warm-up), medians; {os.cpu_count()} CPUs")
    for runtime in ws.runtimes:
        python = f" (python: {runtime.interpreter})" if runtime.interpreter else ""
        print(f"{runtime.name}: {runtime.path}{python}")
    print("load average (1/5/15 min) before/after: " + "; ".join(
        f"{item} {before} / {after}" for item, (before, after) in loads.items()
    ))  # fmt: skip
    print(table(results, names))
    for line in error_lines(results):
        print(f"error: {line}")
    if args.json:
        report = {
            "runtimes": {runtime.name: runtime.path for runtime in ws.runtimes},
            "installed_with_pip": ws.installed,
            "rounds": opts.rounds,
            "warmup": opts.warmup,
            "machine": {"kernel": os.uname().release, "cpus": os.cpu_count()},
            "load_before_after": loads,
            "results": results,
            "targets": assess(results, names),
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
