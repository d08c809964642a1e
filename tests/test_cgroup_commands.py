"""pause, resume, ps, events and update through the ocirun command line, with real containers
(the fixtures of conftest.py: a busybox rootfs, bundles in a private test cgroup)."""

import json
import os
import select
import subprocess
import time
from pathlib import Path

from helpers import OCIRUN, cgroup_dirs

SPIN = ["sh", "-c", "while :; do :; done"]


def started(ocirun, make_bundle, cid, args, resources=None) -> dict:
    """Create and start a container running args; its state."""
    bundle = make_bundle(args)
    if resources:
        bundle.config["linux"]["resources"].update(resources)
    ocirun("create", "--bundle", bundle.write(), cid, check=True)
    ocirun("start", cid, check=True)
    state = ocirun.state(cid)
    state["cgroupsPath"] = bundle.config["linux"]["cgroupsPath"]
    return state


def cgroup_file(cgroups_path: str, hierarchy: str, name: str) -> str:
    """A file of the container's cgroup in the hierarchy whose name holds `hierarchy`."""
    for directory in cgroup_dirs(cgroups_path):
        if hierarchy in Path(directory).relative_to("/sys/fs/cgroup").parts[0].split(","):
            return (Path(directory) / name).read_text().strip()
    raise AssertionError(f"no {hierarchy} hierarchy for {cgroups_path}")


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_pause_and_resume(ocirun, make_bundle, cid):
    pid = started(ocirun, make_bundle, cid, SPIN)["pid"]
    ocirun("pause", cid, check=True)
    assert ocirun.state(cid)["status"] == "paused"
    before = cpu_ticks(pid)
    time.sleep(0.3)
    assert cpu_ticks(pid) == before  # frozen: no CPU time at all
    ocirun("resume", cid, check=True)
    assert ocirun.state(cid)["status"] == "running"
    time.sleep(0.3)
    assert cpu_ticks(pid) > before


def test_pause_and_resume_refuse_the_wrong_status(ocirun, make_bundle, cid):
    started(ocirun, make_bundle, cid, ["sleep", "100"])
    result = ocirun("resume", cid)
    assert result.returncode == 1 and "not paused" in result.stderr
    ocirun("kill", cid, "KILL", check=True)
    deadline = time.monotonic() + 5
    while ocirun.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    result = ocirun("pause", cid)
    assert result.returncode == 1 and "not running" in result.stderr
    assert ocirun("pause", "no-such-container").returncode == 1


def test_delete_force_of_a_paused_container(ocirun, make_bundle, cid):
    state = started(ocirun, make_bundle, cid, ["sleep", "100"])
    ocirun("pause", cid, check=True)
    ocirun("delete", "--force", cid, check=True)
    stat = Path(f"/proc/{state['pid']}/stat")
    assert not stat.exists() or ") Z " in stat.read_text()  # gone, or a zombie of its reaper
    assert not cgroup_dirs(state["cgroupsPath"])


def test_ps_json_lists_every_process(ocirun, make_bundle, cid):
    state = started(ocirun, make_bundle, cid, ["sh", "-c", "sleep 100 & sleep 100 & wait"])
    deadline = time.monotonic() + 5
    while len(pids := json.loads(ocirun("ps", "--format", "json", cid, check=True).stdout)) < 3:
        assert time.monotonic() < deadline, pids
        time.sleep(0.02)
    assert state["pid"] in pids and len(pids) == 3
    for pid in pids:
        assert f":{state['cgroupsPath']}\n" in Path(f"/proc/{pid}/cgroup").read_text()
    assert (
        ocirun("ps", "-f=json", cid, check=True).stdout == json.dumps(pids).replace(" ", "") + "\n"
    )


def test_ps_table_is_ps_filtered_to_the_container(ocirun, make_bundle, cid):
    state = started(ocirun, make_bundle, cid, ["sleep", "100"])
    lines = ocirun("ps", cid, check=True).stdout.splitlines()
    assert lines[0].split()[:3] == ["UID", "PID", "PPID"]  # ps -ef
    assert [int(line.split()[1]) for line in lines[1:]] == [state["pid"]]
    lines = ocirun("ps", cid, "-o", "pid,comm", check=True).stdout.splitlines()
    assert [line.split() for line in lines] == [["PID", "COMMAND"], [str(state["pid"]), "sleep"]]


def test_ps_of_a_stopped_container_is_empty(ocirun, make_bundle, cid):
    ocirun("create", "--bundle", make_bundle(["true"]).write(), cid, check=True)
    ocirun("start", cid, check=True)
    deadline = time.monotonic() + 5
    while ocirun.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ocirun("ps", "--format", "json", cid, check=True).stdout == "null\n"  # as runc
    result = ocirun("ps", "--format", "yaml", cid)
    assert result.returncode == 1 and "invalid format" in result.stderr


def test_events_stats(ocirun, make_bundle, cid):
    limit = 64 << 20
    resources = {"memory": {"limit": limit}, "pids": {"limit": 50}}
    state = started(ocirun, make_bundle, cid, ["sleep", "100"], resources)
    lines = ocirun("events", "--stats", cid, check=True).stdout.splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert list(event) == ["type", "id", "data"] and event["type"] == "stats" and event["id"] == cid
    data = event["data"]
    assert {"cpu", "memory", "pids", "blkio", "hugetlb"} <= set(data)
    assert data["pids"] == {"current": 1, "limit": 50}
    assert data["memory"]["usage"]["limit"] == limit and data["memory"]["usage"]["usage"] > 0
    assert data["cpu"]["usage"]["total"] > 0
    assert state["pid"] > 0


def test_events_streams_stats_and_ooms_until_the_container_is_deleted(ocirun, make_bundle, cid):
    limit = 32 << 20
    resources = {"memory": {"limit": limit, "swap": limit}}
    # dd fills a 100 MiB buffer: past 32 MiB the OOM killer takes it
    eater = ["sh", "-c", "read go; dd if=/dev/zero of=/dev/null bs=100M count=1; sleep 100"]
    bundle = make_bundle(eater)
    bundle.config["linux"]["resources"].update(resources)
    read_end, write_end = os.pipe()
    try:
        ocirun("create", "--bundle", bundle.write(), cid, stdin=read_end, check=True)
    finally:
        os.close(read_end)
    ocirun("start", cid, check=True)
    events = subprocess.Popen(
        [OCIRUN, "--root", str(ocirun.root), "events", "--interval", "200ms", cid],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        first = json.loads(events.stdout.readline())  # a stats line after 200 ms
        assert first["type"] == "stats" and first["id"] == cid
        os.write(write_end, b"go\n")  # now eat memory
        seen = []
        deadline = time.monotonic() + 20
        while {"type": "oom", "id": cid} not in seen:
            assert time.monotonic() < deadline, f"no OOM event; saw {[e['type'] for e in seen]}"
            if select.select([events.stdout], [], [], 1)[0]:
                seen.append(json.loads(events.stdout.readline()))
        ocirun("delete", "--force", cid, check=True)
        assert events.wait(timeout=10) == 0  # the cgroup is gone: the stream ends
    finally:
        os.close(write_end)
        events.kill()
        events.wait()


def test_events_refuses_a_stopped_container_and_a_bad_interval(ocirun, make_bundle, cid):
    started(ocirun, make_bundle, cid, ["sleep", "100"])
    result = ocirun("events", "--interval", "0s", cid)
    assert result.returncode == 1 and "greater than 0" in result.stderr
    result = ocirun("events", "--interval", "5", cid)
    assert result.returncode == 1 and "invalid duration" in result.stderr
    ocirun("kill", cid, "KILL", check=True)
    deadline = time.monotonic() + 5
    while ocirun.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    result = ocirun("events", "--stats", cid)
    assert result.returncode == 1 and "is not running" in result.stderr


def test_update_with_flags_in_both_forms(ocirun, make_bundle, cid):
    path = started(ocirun, make_bundle, cid, ["sleep", "100"])["cgroupsPath"]
    ocirun(
        "update",
        "--memory",
        "64m",
        "--memory-swap=128M",
        "--pids-limit",
        "30",
        "--cpu-share=256",
        "--cpu-quota",
        "20000",
        "--cpu-period=100000",
        "--cpuset-cpus",
        "0",
        cid,
        check=True,
    )
    assert cgroup_file(path, "memory", "memory.limit_in_bytes") == str(64 << 20)
    assert cgroup_file(path, "memory", "memory.memsw.limit_in_bytes") == str(128 << 20)
    assert cgroup_file(path, "pids", "pids.max") == "30"
    assert cgroup_file(path, "cpu", "cpu.shares") == "256"
    assert cgroup_file(path, "cpu", "cpu.cfs_quota_us") == "20000"
    assert cgroup_file(path, "cpuset", "cpuset.cpus") == "0"
    ocirun("update", "--pids-limit=-1", "--memory", "-1", cid, check=True)
    assert cgroup_file(path, "pids", "pids.max") == "max"


def test_update_with_resources_from_a_file_and_stdin(ocirun, make_bundle, cid, tmp_path):
    path = started(ocirun, make_bundle, cid, ["sleep", "100"])["cgroupsPath"]
    resources = tmp_path / "resources.json"
    resources.write_text(json.dumps({"memory": {"limit": 100 << 20}, "pids": {"limit": 25}}))
    ocirun("update", f"--resources={resources}", cid, check=True)
    assert cgroup_file(path, "memory", "memory.limit_in_bytes") == str(100 << 20)
    assert cgroup_file(path, "pids", "pids.max") == "25"
    # what containerd sends: resources on stdin; a flag overrides the document
    document = json.dumps({"memory": {"limit": 67108864}, "pids": {"limit": 12}})
    ocirun(
        "update", "--resources", "-", "--pids-limit", "13", cid, input=document.encode(), check=True
    )
    assert cgroup_file(path, "memory", "memory.limit_in_bytes") == "67108864"
    assert cgroup_file(path, "pids", "pids.max") == "13"
    stored = json.loads((ocirun.root / cid / "state.json").read_text())
    assert stored["config"]["linux"]["resources"]["pids"] == {"limit": 13}


def test_update_errors(ocirun, make_bundle, cid):
    started(ocirun, make_bundle, cid, ["sleep", "100"])
    result = ocirun("update", "--memory", "lots", cid)
    assert result.returncode == 1 and "invalid value for --memory" in result.stderr
    result = ocirun("update", "--resources", "-", cid, input=b"not json")
    assert result.returncode == 1 and "not JSON" in result.stderr
    result = ocirun("update", "--resources", "-", cid, input=b"[1, 2]")
    assert result.returncode == 1 and "JSON object" in result.stderr
    result = ocirun("update", "--memory", "16k", cid)  # below what the container uses
    assert result.returncode == 1 and "unable to set memory limit" in result.stderr
    ocirun("kill", cid, "KILL", check=True)
    deadline = time.monotonic() + 5
    while ocirun.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    result = ocirun("update", "--pids-limit", "5", cid)
    assert result.returncode == 1 and "not running" in result.stderr
