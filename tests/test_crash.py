"""ocirun killed at random points, and many commands at once: nothing may be left behind.

A create killed by SIGKILL leaves a state dir without state.json; `delete --force` must undo
what that create had made (its init, the processes of its cgroup, its host mounts, the cgroup)
from the progress record create keeps. CRASH_ROUNDS (default 12 per case) sets how many random
kill points each test tries; CYCLES (default 60) how many create/start/delete cycles run.
"""

import json
import os
import random
import signal
import subprocess
import threading
import time

import pytest
from helpers import OCIRUN, cgroup_dirs, mounts_under

ROUNDS = int(os.environ.get("CRASH_ROUNDS", "12"))
CYCLES = int(os.environ.get("CYCLES", "60"))


def processes_in(rootfs: str, cgroups_path: str) -> list[int]:
    """Processes whose root is the rootfs or that are in the container's cgroup."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            root = os.readlink(f"/proc/{entry}/root")
            with open(f"/proc/{entry}/cgroup") as f:
                cgroups = f.read()
        except OSError:
            continue
        if root == rootfs or cgroups_path in cgroups:
            found.append(int(entry))
    return found


def assert_nothing_left(ocirun, bundle_dir: str, rootfs: str, cgroups_path: str) -> None:
    assert ocirun.ids() == [], "state dirs left"
    assert cgroup_dirs(cgroups_path) == [], "cgroups left"
    assert mounts_under(bundle_dir) == [], "mounts left"
    assert processes_in(rootfs, cgroups_path) == [], "processes left"


def sleeper(make_bundle, rootfs: str) -> tuple[str, str, str]:
    """A bundle of `sleep 100` with a rootfs of its own: (bundle, rootfs, cgroupsPath)."""
    bundle = make_bundle(["sleep", "100"])
    own = bundle.own_rootfs(rootfs)
    return bundle.write(), own, bundle.config["linux"]["cgroupsPath"]


def kill_after(args: list[str], delay: float) -> int:
    """Start ocirun with args, SIGKILL it after delay seconds (if still running); its status."""
    proc = subprocess.Popen([OCIRUN, *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    return proc.wait()


@pytest.mark.parametrize("mount_namespace", [True, False], ids=["mountns", "host-mounts"])
def test_create_killed_at_random_points_then_delete_force_leaves_nothing(
    ocirun, make_bundle, cid, rootfs, mount_namespace
):
    bundle = make_bundle(["sleep", "100"])
    own = bundle.own_rootfs(rootfs)
    if not mount_namespace:  # the config's mounts land on the host: delete must undo them
        linux = bundle.config["linux"]
        linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "mount"]
        linux.pop("maskedPaths")
        linux.pop("readonlyPaths")
    path = bundle.write()
    cgroups_path = bundle.config["linux"]["cgroupsPath"]
    rng = random.Random(cid)
    killed = 0
    for round_ in range(ROUNDS):
        name = f"{cid}-{round_}"
        status = kill_after(["--root", str(ocirun.root), "create", "-b", path, name],
                            rng.uniform(0.0, 0.08))  # fmt: skip
        killed += status == -signal.SIGKILL
        ocirun("delete", "--force", name, check=True)
        assert_nothing_left(ocirun, path, own, cgroups_path)
    assert killed >= ROUNDS // 3, "too few creates were killed mid-way to test anything"


def test_start_and_delete_killed_at_random_points_then_delete_force_leaves_nothing(
    ocirun, make_bundle, cid, rootfs
):
    path, own, cgroups_path = sleeper(make_bundle, rootfs)
    rng = random.Random(cid)
    root = ["--root", str(ocirun.root)]
    for round_ in range(ROUNDS):
        name = f"{cid}-{round_}"
        ocirun("create", "-b", path, name, check=True)
        kill_after([*root, "start", name], rng.uniform(0.0, 0.03))
        kill_after([*root, "delete", "--force", name], rng.uniform(0.0, 0.03))
        ocirun("delete", "--force", name, check=True)
        assert_nothing_left(ocirun, path, own, cgroups_path)


def test_exec_killed_at_random_points_then_delete_force_leaves_nothing(
    ocirun, make_bundle, cid, rootfs
):
    path, own, cgroups_path = sleeper(make_bundle, rootfs)
    rng = random.Random(cid)
    root = ["--root", str(ocirun.root)]
    ocirun("run", "-d", "-b", path, cid, check=True)
    for _ in range(ROUNDS):
        kill_after([*root, "exec", "-d", cid, "sleep", "50"], rng.uniform(0.0, 0.05))
    ocirun("delete", "--force", cid, check=True)
    assert_nothing_left(ocirun, path, own, cgroups_path)


def test_parallel_loops_on_distinct_ids_have_no_error(ocirun, make_bundle, cid):
    """16 loops of create/start/delete at once, each on its own ids."""
    errors: list[str] = []
    bundles = [make_bundle(["true"]).write() for _ in range(16)]

    def loop(index: int) -> None:
        for round_ in range(3):
            name = f"{cid}-{index}-{round_}"
            for args in (("create", "-b", bundles[index], name), ("start", name)):
                result = ocirun(*args, timeout=120)
                if result.returncode:
                    errors.append(f"{' '.join(args)}: {result.stderr}")
            deadline = time.monotonic() + 30
            while ocirun.state(name)["status"] != "stopped" and time.monotonic() < deadline:
                time.sleep(0.01)
            result = ocirun("delete", name, timeout=120)
            if result.returncode:
                errors.append(f"delete: {result.stderr}")

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert ocirun.ids() == []


def test_concurrent_commands_on_one_id_never_corrupt_its_state(ocirun, make_bundle, cid):
    """state, kill 0, pause/resume, exec and a final delete --force race on one container:
    every state read is a whole document, and the end leaves nothing."""
    path = make_bundle(["sleep", "100"]).write()
    ocirun("run", "-d", "-b", path, cid, check=True)
    bad: list[str] = []

    def reader() -> None:
        for _ in range(20):
            result = ocirun("state", cid)
            if result.returncode == 0:
                status = json.loads(result.stdout)["status"]
                if status not in ("running", "paused", "stopped"):
                    bad.append(status)
            elif "does not exist" not in result.stderr:
                bad.append(result.stderr)

    def poker(args: tuple[str, ...]) -> None:
        for _ in range(8):
            ocirun(*args)

    workers = [threading.Thread(target=reader) for _ in range(3)]
    workers += [threading.Thread(target=poker, args=(a,))
                for a in (("kill", cid, "0"), ("pause", cid), ("resume", cid),
                          ("exec", cid, "true"))]  # fmt: skip
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert bad == []
    ocirun("resume", cid)
    ocirun("delete", "--force", cid, check=True)
    assert ocirun.ids() == []


def test_many_cycles_leave_nothing(ocirun, make_bundle, cid, rootfs):
    bundle = make_bundle(["true"])
    path = bundle.write()
    cgroups_path = bundle.config["linux"]["cgroupsPath"]
    fds_before = len(os.listdir("/proc/self/fd"))
    for round_ in range(CYCLES):
        name = f"{cid}-{round_}"
        ocirun("create", "-b", path, name, check=True)
        ocirun("start", name, check=True)
        deadline = time.monotonic() + 30
        while ocirun.state(name)["status"] != "stopped" and time.monotonic() < deadline:
            time.sleep(0.005)
        ocirun("delete", name, check=True)
    assert_nothing_left(ocirun, path, rootfs, cgroups_path)
    assert len(os.listdir("/proc/self/fd")) == fds_before
