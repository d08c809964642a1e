"""The lifecycle through the CLI with real containers: create, start, state, kill, delete, run."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import OCIRUN, cgroup_dirs, mounts_under

from ocirun.schema import validate_state


def wait_for_status(ocirun, cid, status, timeout=5.0, existing=True):
    """Poll `state` until the status shows (existing=False: the container may not exist yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = ocirun("state", cid, check=existing)
        if result.returncode == 0 and json.loads(result.stdout)["status"] == status:
            return
        time.sleep(0.02)
    raise AssertionError(f"{cid} never became {status}: {ocirun.state(cid)}")


def test_run_prints_output_and_returns_exit_code(ocirun, make_bundle, cid):
    bundle = make_bundle(["sh", "-c", "echo hello from $(hostname); exit 3"])
    result = ocirun("run", "--bundle", bundle.write(), cid)
    assert result.stdout == "hello from ocirun\n"
    assert result.returncode == 3
    assert ocirun.ids() == []  # run deletes the container


def test_run_reports_death_by_signal_as_128_plus_n(ocirun, make_bundle, cid):
    bundle = make_bundle(["sleep", "100"])
    proc = subprocess.Popen([OCIRUN, "--root", str(ocirun.root), "run", "-b", bundle.write(), cid])
    try:
        wait_for_status(ocirun, cid, "running", existing=False)
        ocirun("kill", cid, "9", check=True)
        assert proc.wait(timeout=10) == 128 + 9
    finally:
        proc.kill()


def test_create_start_kill_delete(ocirun, make_bundle, cid, tmp_path):
    bundle = make_bundle(["sleep", "100"])
    pid_file = tmp_path / "init.pid"
    result = ocirun("create", "--bundle", bundle.write(), "--pid-file", str(pid_file), cid)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # stdio belongs to the container
    state = ocirun.state(cid)
    validate_state(state)
    pid = int(pid_file.read_text())
    assert state["status"] == "created" and state["pid"] == pid
    assert state["bundle"] == bundle.write()
    assert Path(f"/proc/{pid}").exists()
    # the init waits: it has not executed sleep yet
    assert Path(f"/proc/{pid}/exe").resolve().name.startswith("python")

    ocirun("start", cid, check=True)
    assert ocirun.state(cid)["status"] == "running"
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] == b"sleep"

    ocirun("kill", cid, "KILL", check=True)
    wait_for_status(ocirun, cid, "stopped")
    assert ocirun.state(cid)["pid"] == 0
    assert cgroup_dirs(bundle.config["linux"]["cgroupsPath"])

    ocirun("delete", cid, check=True)
    result = ocirun("state", cid)
    assert result.returncode == 1 and "does not exist" in result.stderr
    assert not cgroup_dirs(bundle.config["linux"]["cgroupsPath"])


def test_start_twice_fails(ocirun, make_bundle, cid):
    ocirun("create", "-b", make_bundle(["sleep", "100"]).write(), cid, check=True)
    ocirun("start", cid, check=True)
    result = ocirun("start", cid)
    assert result.returncode == 1 and "running" in result.stderr


def test_delete_of_created_container_kills_it(ocirun, make_bundle, cid, tmp_path):
    pid_file = tmp_path / "pid"
    ocirun("create", "-b", make_bundle().write(), "--pid-file", str(pid_file), cid, check=True)
    pid = int(pid_file.read_text())
    ocirun("delete", cid, check=True)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_delete_running_needs_force(ocirun, make_bundle, cid):
    bundle = make_bundle(["sleep", "100"])
    ocirun("create", "-b", bundle.write(), cid, check=True)
    ocirun("start", cid, check=True)
    result = ocirun("delete", cid)
    assert result.returncode == 1 and "running" in result.stderr
    ocirun("delete", "--force", cid, check=True)
    assert ocirun.ids() == []
    assert not cgroup_dirs(bundle.config["linux"]["cgroupsPath"])


def test_delete_missing(ocirun):
    assert ocirun("delete", "nothere").returncode == 1
    assert ocirun("delete", "--force", "nothere").returncode == 0


def test_duplicate_id_refused(ocirun, make_bundle, cid):
    ocirun("create", "-b", make_bundle().write(), cid, check=True)
    result = ocirun("create", "-b", make_bundle().write(), cid)
    assert result.returncode == 1 and "exists" in result.stderr
    assert ocirun.state(cid)["status"] == "created"  # the first one is untouched


@pytest.mark.parametrize("bad_id", ["../../etc", "a/b", "..", ".", "", "x y", "évé"])
def test_path_like_ids_refused(ocirun, make_bundle, bad_id, tmp_path):
    result = ocirun("create", "-b", make_bundle().write(), bad_id)
    assert result.returncode == 1 and "invalid container id" in result.stderr
    assert not (tmp_path / "state").exists() or ocirun.ids() == []


def test_invalid_config_names_the_field_and_leaves_nothing(ocirun, make_bundle, cid):
    bundle = make_bundle()
    bundle.config["process"]["args"] = 5
    result = ocirun("create", "-b", bundle.write(), cid)
    assert result.returncode == 1
    assert "process.args" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert ocirun.ids() == []
    assert not cgroup_dirs(bundle.config["linux"]["cgroupsPath"])


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda c: c.update(ociVersion="2.0.0"), "ociVersion"),
        (lambda c: c["root"].update(path="/nonexistent/rootfs"), "root.path"),
        (lambda c: c["process"].update(args=[]), "process.args"),
        (lambda c: c["process"].update(cwd="relative"), "process.cwd"),
        (lambda c: c["linux"]["namespaces"].append({"type": "user"}), "uidMappings"),
        (lambda c: c["linux"].update(cgroupsPath="system.slice:ocirun:x"), "systemd"),
    ],
)
def test_spec_musts_beyond_the_schema(ocirun, make_bundle, cid, edit, field):
    bundle = make_bundle()
    edit(bundle.config)
    result = ocirun("create", "-b", bundle.write(), cid)
    assert result.returncode == 1 and field in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert ocirun.ids() == []


def test_unknown_capability_is_a_warning(ocirun, make_bundle, cid):
    """config.md: values that cannot be mapped MUST be logged as a warning (runc does so too)."""
    bundle = make_bundle()
    bundle.config["process"]["capabilities"]["bounding"].append("CAP_BOGUS")
    result = ocirun("run", "-b", bundle.write(), cid)
    assert result.returncode == 0 and "CAP_BOGUS" in result.stderr


def test_missing_program_fails_create_and_leaves_nothing(ocirun, make_bundle, cid):
    bundle = make_bundle(["no-such-program"])
    result = ocirun("create", "-b", bundle.write(), cid)
    assert result.returncode == 1
    assert "executable file not found" in result.stderr
    assert ocirun.ids() == []
    assert not cgroup_dirs(bundle.config["linux"]["cgroupsPath"])


@pytest.mark.parametrize("program", ["/etc/passwd", "/tmp"])
def test_a_program_that_is_no_executable_fails_create_with_permission_denied(
    ocirun, make_bundle, cid, program
):
    """As runc (Go's LookPath): docker maps "permission denied" to exit 126, a missing
    program to 127."""
    result = ocirun("create", "-b", make_bundle([program]).write(), cid)
    assert result.returncode == 1
    assert f'exec: "{program}": permission denied' in result.stderr
    assert ocirun.ids() == []


def test_failure_is_logged_as_json_line(ocirun, make_bundle, cid, tmp_path):
    log = tmp_path / "log.json"
    bundle = make_bundle(["no-such-program"])
    ocirun("--log", str(log), "--log-format", "json", "create", "-b", bundle.write(), cid)
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "no-such-program" in entry["msg"] and entry["time"]


def test_flags_take_equals_form(ocirun, make_bundle, cid, tmp_path):
    bundle = make_bundle(["true"])
    result = ocirun(f"--log={tmp_path}/log", f"--bundle={bundle.write()}", "run", cid)
    assert result.returncode == 1  # --bundle is a command flag, not a global one
    assert ocirun(f"--log={tmp_path}/log", "run", f"--bundle={bundle.write()}", cid).returncode == 0


def test_only_stdio_reaches_the_container(ocirun, make_bundle, cid):
    bundle = make_bundle(["ls", "/proc/self/fd"])
    read_end, write_end = os.pipe()  # not close-on-exec in the child: a leak if it got in
    try:
        result = ocirun("run", "-b", bundle.write(), cid, pass_fds=(read_end, write_end))
    finally:
        os.close(read_end)
        os.close(write_end)
    assert sorted(result.stdout.split()) == ["0", "1", "2", "3"]  # 3: ls's own directory fd


def test_preserve_fds_passes_extra_fds(ocirun, make_bundle, cid, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("through fd 3\n")
    bundle = make_bundle(["cat", "/proc/self/fd/3"])
    with open(secret) as f:
        os.dup2(f.fileno(), 3) if f.fileno() != 3 else None
        result = ocirun("run", "--preserve-fds", "1", "-b", bundle.write(), cid, pass_fds=(3,))
    assert result.stdout == "through fd 3\n"


def test_init_is_reparented_to_the_callers_subreaper(make_bundle, cid, tmp_path):
    """A shim is a subreaper: the init must become its child, not stay ocirun's."""
    bundle = make_bundle(["sleep", "100"])
    script = (
        "import ctypes, subprocess, sys, os\n"
        "ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)\n"  # PR_SET_CHILD_SUBREAPER
        f"subprocess.run([{OCIRUN!r}, '--root', {str(tmp_path / 'st')!r}, 'create', '-b',"
        f" {bundle.write()!r}, '--pid-file', {str(tmp_path / 'pid')!r}, {cid!r}], check=True,"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        f"pid = int(open({str(tmp_path / 'pid')!r}).read())\n"
        "ppid = int(open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[1])\n"
        "print(ppid == os.getpid())\n"
    )
    try:
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
        )
        assert result.stdout.strip() == "True", result.stderr
    finally:
        subprocess.run([OCIRUN, "--root", str(tmp_path / "st"), "delete", "-f", cid])


def test_namespaces_of_a_default_container(ocirun, make_bundle, cid):
    probe = "echo pid=$$; hostname; cat /sys/class/net/lo/operstate; grep -c . /proc/self/mountinfo"
    bundle = make_bundle(["sh", "-c", probe])
    out = ocirun("run", "-b", bundle.write(), cid, check=True).stdout.split()
    assert out[0] == "pid=1"
    assert out[1] == "ocirun"
    assert out[2] in ("unknown", "up")  # lo reports "unknown" when up
    assert int(out[3]) < 40  # a mount namespace of its own, not the host's
    for ns in ("pid", "net", "mnt", "uts", "ipc"):
        assert os.readlink(f"/proc/self/ns/{ns}")  # host untouched


def test_loopback_is_up(ocirun, make_bundle, cid):
    bundle = make_bundle(["sh", "-c", "ping -c1 -W1 127.0.0.1 >/dev/null && echo ok"])
    bundle.config["process"]["capabilities"]["bounding"].append("CAP_NET_RAW")
    bundle.config["process"]["capabilities"]["effective"].append("CAP_NET_RAW")
    bundle.config["process"]["capabilities"]["permitted"].append("CAP_NET_RAW")
    assert ocirun("run", "-b", bundle.write(), cid).stdout == "ok\n"


def test_no_pivot_uses_chroot(ocirun, make_bundle, cid):
    bundle = make_bundle(["cat", "/etc/hostname"])
    result = ocirun("run", "--no-pivot", "-b", bundle.write(), cid)
    assert result.returncode == 0 and result.stdout == "ocirun\n"


def test_dev_has_the_default_devices_and_links(ocirun, make_bundle, cid):
    probe = (
        "ls /dev; readlink /dev/fd; readlink /dev/stdin; readlink /dev/ptmx;"
        " echo x > /dev/null && echo w"
    )
    bundle = make_bundle(["sh", "-c", probe])
    out = ocirun("run", "-b", bundle.write(), cid, check=True).stdout.split()
    for name in ("null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue"):
        assert name in out
    assert "/proc/self/fd" in out and "/proc/self/fd/0" in out and "pts/ptmx" in out
    assert out[-1] == "w"


def test_state_and_list(ocirun, make_bundle, cid):
    ocirun("create", "-b", make_bundle(["sleep", "100"]).write(), cid, check=True)
    listing = json.loads(ocirun("list", "--format", "json", check=True).stdout)
    assert [s["id"] for s in listing] == [cid] and listing[0]["status"] == "created"
    assert ocirun("list", "-q", check=True).stdout == f"{cid}\n"
    table = ocirun("list", check=True).stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "PID", "STATUS"] and cid in table[1]


def test_pid_reuse_guard(ocirun, make_bundle, cid, tmp_path):
    """A recorded pid now used by another process must not make the container look alive."""
    ocirun("create", "-b", make_bundle(["sleep", "100"]).write(), cid, check=True)
    state_file = ocirun.root / cid / "state.json"
    data = json.loads(state_file.read_text())
    sleeper = subprocess.Popen(["sleep", "100"])
    try:
        os.kill(data["pid"], 9)
        time.sleep(0.1)
        data["pid"] = sleeper.pid  # pretend the pid was reused
        state_file.write_text(json.dumps(data))
        assert ocirun.state(cid)["status"] == "stopped"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_version_and_help():
    out = subprocess.run([OCIRUN, "--version"], capture_output=True, text=True).stdout
    assert out.splitlines()[0].startswith("ocirun version ")
    assert "spec: 1.3.0" in out
    assert "create" in subprocess.run([OCIRUN, "help"], capture_output=True, text=True).stdout


def test_features_validates(ocirun):
    from ocirun.schema import validate_features

    doc = json.loads(ocirun("features", check=True).stdout)
    validate_features(doc)
    assert "mount" in doc["linux"]["namespaces"]


def test_spec_writes_a_runnable_config(ocirun, tmp_path, rootfs, cid):
    ocirun("spec", "--bundle", str(tmp_path), check=True)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["process"]["args"] == ["sh"]
    assert ocirun("spec", "--bundle", str(tmp_path)).returncode == 1  # never overwrites
    config["process"].update(terminal=False, args=["true"])
    config["root"]["path"] = rootfs
    config["linux"]["cgroupsPath"] = f"/ocirun-pytest-{os.getpid()}/{cid}"
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert ocirun("run", "-b", str(tmp_path), cid).returncode == 0


def test_kill_signals_by_name_and_number(ocirun, make_bundle, cid):
    script = "trap 'echo got USR1; exit 0' USR1; while true; do sleep 0.05; done"
    bundle = make_bundle(["sh", "-c", script])
    proc = subprocess.Popen(
        [OCIRUN, "--root", str(ocirun.root), "run", "-b", bundle.write(), cid],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for_status(ocirun, cid, "running", existing=False)
        time.sleep(0.1)  # let the trap be installed
        ocirun("kill", cid, "SIGUSR1", check=True)
        assert proc.wait(timeout=5) == 0
        assert proc.stdout.read() == "got USR1\n"
    finally:
        proc.kill()
    assert ocirun("kill", "nothere", "9").returncode == 1


def test_kill_default_is_sigterm(ocirun, make_bundle, cid, tmp_path):
    """The init's TERM trap records the signal: a SIGKILL would leave no record, and PID 1
    ignores the other signals it has no handler for."""
    out = tmp_path / "out"
    out.mkdir()
    script = "trap 'echo TERM > /out/signal; exit 0' TERM; touch /out/trapped; sleep 100 & wait"
    bundle = make_bundle(["sh", "-c", script])
    bundle.config["mounts"].append(
        {"destination": "/out", "type": "bind", "source": str(out), "options": ["rbind", "rw"]}
    )
    ocirun("create", "-b", bundle.write(), cid, check=True)
    ocirun("start", cid, check=True)
    deadline = time.monotonic() + 10
    while not (out / "trapped").exists() and time.monotonic() < deadline:
        time.sleep(0.02)  # the trap is set before the file is made
    ocirun("kill", cid, check=True)
    wait_for_status(ocirun, cid, "stopped")
    assert (out / "signal").read_text() == "TERM\n"


def test_program_starts_with_default_signal_dispositions(ocirun, make_bundle, cid):
    """Python ignores SIGPIPE and SIGXFSZ; that must not reach the container's program."""
    bundle = make_bundle(["grep", "SigIgn", "/proc/self/status"])
    out = ocirun("run", "-b", bundle.write(), cid, check=True).stdout
    assert out.split() == ["SigIgn:", "0000000000000000"]


def test_without_a_mount_namespace_delete_undoes_the_host_mounts(ocirun, make_bundle, cid, rootfs):
    """The config's mounts land in the host's namespace: delete (and a failed create) undo them."""
    bundle = make_bundle(["sh", "-c", "ls /dev/null /proc/self/status >/dev/null && echo ok"])
    own = bundle.own_rootfs(rootfs)
    config = bundle.config
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"]
                                     if n["type"] != "mount"]  # fmt: skip
    for key in ("maskedPaths", "readonlyPaths"):
        config["linux"].pop(key)
    ocirun("create", "-b", bundle.write(), cid, check=True)
    assert own + "/proc" in mounts_under(own) and own + "/dev/pts" in mounts_under(own)
    ocirun("start", cid, check=True)
    wait_for_status(ocirun, cid, "stopped")
    ocirun("delete", cid, check=True)
    assert mounts_under(own) == []

    config["process"]["args"] = ["no-such-program"]  # fails after the mounts were made
    assert ocirun("create", "-b", bundle.write(), cid).returncode == 1
    assert mounts_under(own) == [] and ocirun.ids() == []


def test_delete_force_clears_a_create_that_was_killed_midway(ocirun, make_bundle, cid):
    """A state dir without state.json (its create was SIGKILLed) must not block the id forever."""
    (ocirun.root / cid).mkdir(parents=True)
    os.mkfifo(ocirun.root / cid / "exec.fifo")
    assert ocirun("delete", cid).returncode == 1
    ocirun("delete", "--force", cid, check=True)
    assert not (ocirun.root / cid).exists()
    ocirun("run", "-b", make_bundle().write(), cid, check=True)
    assert ocirun("delete", "--force", "../x").returncode == 1  # an invalid id is no missing one


def test_each_container_gets_its_own_session_keyring(ocirun, make_bundle, cid):
    """As runc: a session keyring "_ses.<id>" for the init, unless --no-new-keyring."""
    ocirun("create", "-b", make_bundle(["sleep", "100"]).write(), cid, check=True)
    ocirun("create", "--no-new-keyring", "-b", make_bundle(["sleep", "100"]).write(),
           f"{cid}-nk", check=True)  # fmt: skip
    keys = Path("/proc/keys").read_text()
    assert f"_ses.{cid}:" in keys or f"_ses.{cid} " in keys
    assert f"_ses.{cid}-nk" not in keys
