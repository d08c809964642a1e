"""pytest support for the user-mode-linux guest (tests/guest/README.md).

- The `guest` fixture boots guests: `guest.run(["cmd", ...], systemd=False)` → uml.GuestResult.
- Tests marked `@pytest.mark.guest` run inside a guest: on the host, the first such test of a
  module boots one guest that runs all of the module's marked tests with pytest, and every
  marked test then reports what its run in the guest did (passed, failed with the guest's
  traceback, skipped with the guest's reason). Inside the guest they run as ordinary tests.
  Their fixtures are still set up on the host first: keep them cheap and host-safe.
- `-m "not guest"` deselects them; without user-mode-linux they are skipped with the reason.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from . import uml

IN_GUEST = os.environ.get(uml.IN_GUEST_ENV) == "1"
REPO = Path(__file__).resolve().parents[2]
MODULE_TIMEOUT = 1200  # seconds for one module's guest run


class Guest:
    """Boots a guest per call (about 2 s, 7 s with systemd)."""

    def run(self, argv: list[str], **kw) -> uml.GuestResult:
        return uml.run(argv, **kw)


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "guest: runs inside a user-mode-linux guest with cgroup v2 (tests/guest)"
    )


@pytest.fixture(scope="session")
def guest() -> Guest:
    """Boots user-mode-linux guests (skips the test where that is impossible)."""
    reason = uml.unavailable()
    if reason:
        pytest.skip(reason)
    return Guest()


class ModuleRun:
    """One guest run of a module's marked tests: each test's outcome, from pytest's junit XML."""

    def __init__(self, path: Path, nodeids: list[str]) -> None:
        self.outcomes: dict[str, tuple[str, str]] = {}
        self.error = ""
        self.reason = uml.unavailable()
        if self.reason:
            return
        argv = [
            str(REPO / ".venv" / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "-m", "guest", f"--junitxml={uml.OUT_DIR}/junit.xml", *nodeids,
        ]  # fmt: skip
        try:
            result = uml.run(argv, cwd=str(REPO), timeout=MODULE_TIMEOUT)
        except uml.GuestError as error:
            self.error = str(error)
            return
        self.output = result.output
        self.seconds = result.seconds
        junit = result.files.get("junit.xml")
        if junit is None:
            self.error = f"pytest in the guest wrote no report (status {result.returncode}):\n"
            self.error += result.output[-4000:]
            return
        for case in ET.fromstring(junit).iter("testcase"):
            name = case.get("name", "")
            outcome, text = "passed", ""
            for tag in ("failure", "error", "skipped"):
                found = case.find(tag)
                if found is not None:
                    outcome = tag
                    text = (found.get("message") or "") + "\n" + (found.text or "")
                    break
            self.outcomes[name] = (outcome, text)


_runs: dict[Path, ModuleRun] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """On the host, a `guest` test reports its run in the guest instead of running here."""
    if IN_GUEST or pyfuncitem.get_closest_marker("guest") is None:
        return None
    path = Path(pyfuncitem.fspath)
    if path not in _runs:
        marked = [
            item.nodeid
            for item in pyfuncitem.session.items
            if Path(item.fspath) == path and item.get_closest_marker("guest") is not None
        ]
        _runs[path] = ModuleRun(path, marked)
    run = _runs[path]
    if run.reason:
        pytest.skip(run.reason)
    if run.error:
        pytest.fail(f"guest run of {path.name}: {run.error}", pytrace=False)
    outcome, text = run.outcomes.get(pyfuncitem.name, ("missing", ""))
    if outcome == "passed":
        return True
    if outcome == "skipped":
        pytest.skip(f"in the guest: {text.strip()}")
    if outcome == "missing":
        pytest.fail(f"{pyfuncitem.name} did not run in the guest:\n{run.output[-4000:]}")
    pytest.fail(f"in the guest ({outcome}):\n{text}", pytrace=False)
