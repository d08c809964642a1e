"""Run runc 1.1.5's own bats suite against ocirun; fail when a test outside known-failures fails.

    .venv/bin/python tests/runc-bats/check.py [FILE_FILTER]

The suite and its runner are `../shared/runc-bats` beside the repository (RUNC_BATS_RUNNER
names another runner); the runner installs bats and its other tools and builds its images
itself. FILE_FILTER (an ERE on the .bats file names) and TEST_FILTER (on test names, passed on
through the environment) run a part. A failure listed as `runc-fails` in known-failures is
accepted only when runc, run on the same tests afterwards, fails them too. The runner's logs
(one .tap per file, with each failure's output) stay in RUNC_BATS_LOGDIR, or in a temporary
directory that is removed when everything passed.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
KNOWN = HERE / "known-failures"
LOCKED = 75  # the runner's exit status when another run holds its lock
RESULT = re.compile(r"^(?:not )?ok \d+ (.*?)(?: in \d+ms)?(?: # skip.*)?$")
NOT_OK = re.compile(r"^not ok \d+ (.*?)(?: in \d+ms)?$")
UNREPORTED = re.compile(r"^# runner: (\d+) of \d+ tests did not report")


class Known:
    """One line of known-failures."""

    def __init__(self, line: str) -> None:
        fields = [field.strip() for field in line.split(" | ")]
        if len(fields) != 4 or fields[2] not in ("always", "runc-fails"):
            raise SystemExit(f"{KNOWN}: bad line (FILE | TEST NAME | WHEN | REASON): {line}")
        self.file, self.name, self.when, self.reason = fields


def load_known() -> dict[tuple[str, str], Known]:
    entries = {}
    for line in KNOWN.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            entry = Known(line)
            entries[(entry.file, entry.name)] = entry
    return entries


def run_suite(runtime: str, logdir: Path, file_filter: str, test_filter: str | None) -> None:
    runner = os.environ.get("RUNC_BATS_RUNNER", str(REPO.parent / "shared/runc-bats/run"))
    if not os.access(runner, os.X_OK):
        raise SystemExit(f"runc-bats: no runner at {runner} (set RUNC_BATS_RUNNER)")
    env = dict(os.environ)
    if test_filter is None:
        env.pop("TEST_FILTER", None)
    else:
        env["TEST_FILTER"] = test_filter
    args = [runner, runtime, str(logdir)] + ([file_filter] if file_filter else [])
    # its status: 0 when nothing failed, LOCKED while another run (one at a time) goes on
    while subprocess.run(args, env=env, check=False).returncode == LOCKED:
        print("runc-bats: waiting for the other run to finish", flush=True)
        time.sleep(15)


def failures(logdir: Path) -> tuple[list[tuple[str, str]], int]:
    """(file, test name) of every failed test, and how many tests did not report at all."""
    failed, unreported = [], 0
    for tap in sorted(logdir.glob("*.tap")):
        for line in tap.read_text(errors="replace").splitlines():
            if match := NOT_OK.match(line):
                failed.append((f"{tap.stem}.bats", match.group(1)))
            elif match := UNREPORTED.match(line):
                unreported += int(match.group(1))
    return failed, unreported


def reported(logdir: Path) -> set[tuple[str, str]]:
    """(file, test name) of every test that reported a result, failed or not."""
    tests = set()
    for tap in logdir.glob("*.tap"):
        for line in tap.read_text(errors="replace").splitlines():
            if match := RESULT.match(line):
                tests.add((f"{tap.stem}.bats", match.group(1)))
    return tests


def ere_escape(text: str) -> str:
    """A test name as a literal in the extended regular expression `bats -f` takes."""
    return re.sub(r"([.\[\]()*+?{}|^$\\])", r"\\\1", text)


def run_by_runc(tests: list[tuple[str, str]], logdir: Path) -> tuple[set, set]:
    """Which of these tests runc fails on this machine too, and which it ran at all."""
    runc = shutil.which("runc")
    if not tests or runc is None:
        return set(), set()
    files = sorted({file for file, _ in tests})
    file_filter = "^(" + "|".join(ere_escape(f) for f in files) + ")$"
    names = "^(" + "|".join(ere_escape(name) for _, name in tests) + ")$"
    print(f"\nrunc-bats: the same {len(tests)} tests against {runc}:", flush=True)
    run_suite(runc, logdir, file_filter, names)
    return set(failures(logdir)[0]), reported(logdir)


def main() -> int:
    file_filter = sys.argv[1] if len(sys.argv) > 1 else ""
    known = load_known()
    keep = os.environ.get("RUNC_BATS_LOGDIR")
    logdir = Path(keep or tempfile.mkdtemp(prefix="ocirun-runc-bats-"))
    run_suite(str(REPO / ".venv/bin/ocirun"), logdir / "ocirun", file_filter,
              os.environ.get("TEST_FILTER"))  # fmt: skip
    failed, unreported = failures(logdir / "ocirun")
    conditional = [t for t in failed if t in known and known[t].when == "runc-fails"]
    runc_failed, runc_ran = run_by_runc(conditional, logdir / "runc")
    unexpected = [
        t for t in failed if t not in known or (t in conditional and t not in runc_failed)
    ]
    print()
    for test in failed:
        if test in unexpected:
            if test not in known:
                why = "not in known-failures"
            else:
                why = "runc passes it here" if test in runc_ran else "runc could not be run on it"
            print(f"runc-bats: FAILED   {test[0]}: {test[1]} ({why})")
        else:
            print(f"runc-bats: accepted {test[0]}: {test[1]} ({known[test].reason})")
    ran = {tap.stem + ".bats" for tap in (logdir / "ocirun").glob("*.tap")}
    for test in sorted(t for t in set(known) - set(failed) if t[0] in ran):
        print(f"runc-bats: note: {test[0]}: {test[1]} is in known-failures but did not fail")
    if unreported:
        print(f"runc-bats: FAILED   {unreported} tests did not report (hung or crashed)")
    ok = not unexpected and not unreported
    print(f"runc-bats: {len(failed)} failed, {len(unexpected)} unexpected; logs in {logdir}")
    if ok and not keep:
        shutil.rmtree(logdir)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
