"""--systemd-cgroup against a real systemd: a user-mode-linux guest with cgroup v2 and systemd as
PID 1 (tests/guest), where tests/systemd_scenario.py runs the same containers under ocirun and
runc; each test compares what one runtime left there with what it should be.

The guest boots once for the module (~100 s here under load): the scenario reports facts as
JSON, and asserts nothing itself.
"""

import json
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
RUNTIMES = {"ocirun": str(REPO / ".venv" / "bin" / "ocirun"), "runc": "/usr/sbin/runc"}

try:
    sys.path.insert(0, str(TESTS / "guest"))
    import uml  # the guest harness (tests/guest/uml.py)
except ImportError:
    uml = None
finally:
    sys.path.remove(str(TESTS / "guest"))


@pytest.fixture(scope="module")
def seen() -> dict[str, dict]:
    """runtime name -> the scenario's report from the guest."""
    if uml is None:
        pytest.skip("the guest harness tests/guest/uml.py is not in this tree")
    if reason := uml.unavailable():
        pytest.skip(reason)
    rootfs = REPO / "bundles" / "hello" / "rootfs"  # the guest sees the host's files, not /tmp
    if not (rootfs / "bin" / "busybox").exists():
        pytest.skip(f"{rootfs} is not built (setup.sh builds it)")
    script = " && ".join(
        f"{sys.executable} {TESTS / 'systemd_scenario.py'} {binary} {rootfs}"
        for binary in RUNTIMES.values()
    )
    result = uml.run(["sh", "-c", script], systemd=True, timeout=900, cwd=str(REPO))
    reports = [json.loads(line) for line in result.stdout.splitlines() if line.startswith(b"{")]
    assert result.returncode == 0 and len(reports) == len(RUNTIMES), result.output
    return dict(zip(RUNTIMES, reports, strict=True))


@pytest.fixture(params=list(RUNTIMES))
def runtime(request, seen) -> tuple[str, dict]:
    return request.param, seen[request.param]


def test_scope_with_limits_is_made(runtime):
    name, report = runtime
    step = report["limits"]
    assert step["create_rc"] == 0, step["create_err"]
    unit = step["created"]
    assert unit["LoadState"] == "loaded" and unit["ActiveState"] == "active"
    assert unit["ControlGroup"] == f"/system.slice/ocirun-{name}-limits.scope"
    assert unit["Slice"] == "system.slice" and unit["Delegate"] == "yes"
    assert unit["MemoryMax"] == str(64 << 20) and unit["TasksMax"] == "20"
    assert unit["CPUQuotaPerSecUSec"] == "500ms" and unit["CPUQuotaPeriodUSec"] == "100ms"
    assert unit["CPUWeight"] == "20"  # shares 512, runc 1.1's formula
    assert unit["DevicePolicy"] == "strict"
    assert step["files"] == {
        "memory.max": str(64 << 20),
        "pids.max": "20",
        "cpu.max": "50000 100000",
        "cpu.weight": "20",
    }
    assert step["init_cgroup"] == f"0::/system.slice/ocirun-{name}-limits.scope"


def test_unit_description(runtime):
    name, report = runtime
    description = report["limits"]["created"]["Description"]
    assert description == {"ocirun": "ocirun", "runc": "libcontainer"}[name] + (
        f" container {name}-limits"
    )


def test_annotations_become_unit_properties(runtime):
    _, report = runtime
    unit = report["limits"]["created"]
    assert unit["TimeoutStopUSec"] == "7s"  # org.systemd.property.TimeoutStopSec: uint64 7
    assert unit["CollectMode"] == "inactive-or-failed"


def test_limits_hold(runtime):
    _, report = runtime
    step = report["limits"]
    assert step["start_rc"] == 0
    assert step["hog_rc"] == 137  # dd's 100 MB buffer under memory.max 64 MiB: OOM-killed
    assert "oom_kill 1" in step["memory_events"]
    assert int(step["pids_after_forks"]["pids.current"]) <= 20  # 40 forks tried
    assert step["pids_after_forks"]["pids.events"] != "max 0"


def test_pause_and_resume(runtime):
    _, report = runtime
    assert report["limits"]["pause"] == [0, "paused", "1"]
    assert report["limits"]["resume_rc"] == 0


def test_update_changes_unit_and_files(runtime):
    _, report = runtime
    step = report["limits"]
    assert step["update_rc"] == 0, step["update_err"]
    unit = step["updated"]
    assert unit["MemoryMax"] == str(128 << 20) and unit["TasksMax"] == "30"
    assert unit["CPUQuotaPerSecUSec"] == "200ms"
    assert step["updated_files"] == {
        "memory.max": str(128 << 20),
        "pids.max": "30",
        "cpu.max": "20000 100000",
    }


@pytest.mark.parametrize("step", ["limits", "nested", "default"])
def test_delete_removes_the_unit(runtime, step):
    _, report = runtime
    seen_step = report[step]
    assert seen_step["delete_rc"] == 0, seen_step["delete_err"]
    assert "warning" not in seen_step["delete_err"]
    assert seen_step["after"]["LoadState"] == "not-found"
    assert not seen_step["dir_after"]


def test_nested_slice(runtime):
    name, report = runtime
    step = report["nested"]
    assert step["create_rc"] == 0, step["create_err"]
    path = f"/sdtest.slice/sdtest-nested.slice/ocirun-{name}-nested.scope"
    assert step["created"]["ControlGroup"] == path
    assert step["created"]["Slice"] == "sdtest-nested.slice"
    assert step["init_cgroup"] == f"0::{path}"


def test_default_unit_name(runtime):
    name, report = runtime
    step = report["default"]
    assert step["create_rc"] == 0, step["create_err"]
    assert step["unit"] == f"{name}-{name}-default.scope"  # ":<runtime>:<id>"
    assert step["created"]["ControlGroup"] == f"/system.slice/{name}-{name}-default.scope"


def test_podman_with_its_systemd_cgroup_manager(runtime):
    """podman --cgroup-manager systemd: the container is libpod-ID.scope, with its limits."""
    _, report = runtime
    step = report["podman"]
    assert step["echo"][:2] == [0, "hello\n"], step["echo"]
    assert step["run_d"][0] == 0, step["run_d"]
    assert step["unit"]["ActiveState"] == "active"
    assert step["unit"]["MemoryMax"] == str(64 << 20) and step["unit"]["TasksMax"] == "20"
    assert step["exec"][:2] == [0, [str(64 << 20), "20"]], step["exec"]
    assert step["stop_rm"][:2] == [0, 0], step["stop_rm"]
    assert step["after"]["LoadState"] == "not-found"
