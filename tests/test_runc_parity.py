"""Behaviour runc's own bats suite expects (tests/runc-bats), with real containers: the help and
version layout, --debug, exec's status, --ignore-paused and --cgroup, cwd rights, the
createContainer hooks' cwd, bind sources a user namespace cannot reach, a shared cgroup."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from helpers import OCIRUN, add_userns


def test_help_and_version_name_the_program_as_called(tmp_path):
    link = tmp_path / "runc"
    link.symlink_to(OCIRUN)
    version = subprocess.run([link, "-v"], capture_output=True, text=True).stdout.splitlines()
    assert version[0].startswith("runc version ") and version[1].startswith("commit: ocirun ")
    assert version[2] == "spec: 1.3.0"
    lines = subprocess.run([link, "-h"], capture_output=True, text=True).stdout.splitlines()
    assert lines[:2] == ["NAME:", "   runc - Open Container Initiative runtime"]
    for command in ("delete", "checkpoint", "restore"):
        result = subprocess.run([link, command, "-h"], capture_output=True, text=True)
        assert result.returncode == 0 and result.stdout.splitlines()[1].startswith(
            f"   runc {command} - "
        )
    result = subprocess.run([link, "foo", "-h"], capture_output=True, text=True)
    assert result.returncode != 0 and "No help topic for 'foo'" in result.stderr


def test_debug_lines_in_json_to_the_log_and_as_text_to_stderr(ocirun, make_bundle, cid, tmp_path):
    bundle = make_bundle(["echo", "hello"]).write()
    log = tmp_path / "log.json"
    result = ocirun("--debug", "--log", str(log), "--log-format", "json", "run", "-b", bundle, cid)
    assert result.returncode == 0 and result.stdout == "hello\n" and "debug" not in result.stderr
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert {e["level"] for e in entries} == {"debug"}
    messages = " ".join(e["msg"] for e in entries)
    assert "child process in init()" in messages and "closing the pipe" in messages
    result = ocirun("--debug", "run", "-b", bundle, cid + "-2")
    assert result.stdout == "hello\n" and 'level=debug msg="init: closing the pipe' in result.stderr


def test_checkpoint_is_refused_after_checking_parent_path(ocirun, make_bundle, cid, tmp_path):
    ocirun("run", "-d", "-b", make_bundle(["sleep", "100"]).write(), cid, check=True)
    absolute = ocirun("checkpoint", "--parent-path", str(tmp_path), cid)
    missing = ocirun("checkpoint", "--parent-path", "no-such", "--image-path", str(tmp_path), cid)
    plain = ocirun("checkpoint", cid)
    assert absolute.returncode and "--parent-path must be relative" in absolute.stderr
    assert missing.returncode and "invalid --parent-path" in missing.stderr
    assert plain.returncode and "not supported" in plain.stderr
    assert ocirun.state(cid)["status"] == "running"


def test_kill_with_signal_0_checks_the_container(ocirun, make_bundle, cid):
    ocirun("run", "-d", "-b", make_bundle(["sleep", "100"]).write(), cid, check=True)
    assert ocirun("kill", cid, "0").returncode == 0
    assert ocirun.state(cid)["status"] == "running"


def test_exec_failures_exit_255_and_the_process_status_passes(ocirun, make_bundle, cid):
    ocirun("run", "-d", "-b", make_bundle(["sleep", "100"]).write(), cid, check=True)
    assert ocirun("exec", cid, "sh", "-c", "exit 42").returncode == 42
    assert ocirun("exec", "--pid-file", "/no/such/dir/pid", cid, "true").returncode == 255
    assert ocirun("exec", cid, "no-such-program").returncode == 255


def test_exec_ignore_paused_waits_for_resume(ocirun, make_bundle, cid):
    ocirun("run", "-d", "-b", make_bundle(["sleep", "100"]).write(), cid, check=True)
    ocirun("pause", cid, check=True)
    refused = ocirun("exec", cid, "echo", "ok")
    assert refused.returncode == 255 and "cannot exec in a paused container" in refused.stderr
    command = [OCIRUN, "--root", str(ocirun.root), "exec", "--ignore-paused", cid, "echo", "ok"]
    waiting = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)  # not a timing assertion: gives the exec time to reach the frozen cgroup
        assert waiting.poll() is None  # frozen with the container
        ocirun("resume", cid, check=True)
        assert waiting.communicate(timeout=20)[0] == "ok\n" and waiting.returncode == 0
    finally:
        waiting.kill()
        waiting.wait()


def _own_cgroup(pid: int, controller: str) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    pytest.skip(f"no v1 {controller} hierarchy on this host")


def test_exec_cgroup_runs_in_a_sub_cgroup(ocirun, make_bundle, cid):
    ocirun("run", "-d", "-b", make_bundle(["sleep", "100"]).write(), cid, check=True)
    path = _own_cgroup(ocirun.state(cid)["pid"], "memory")
    sub = f"/sys/fs/cgroup/memory{path}/sub"
    os.mkdir(sub)
    try:
        shown = ocirun("exec", "--cgroup", "memory:sub", cid, "cat", "/proc/self/cgroup").stdout
        assert f":memory:{path}/sub" in shown and f":pids:{path}\n" in shown
        escape = ocirun("exec", "--cgroup", "..", cid, "true")
        assert escape.returncode == 255 and ".. is not a sub cgroup path" in escape.stderr
        unknown = ocirun("exec", "--cgroup", "whaaat:/", cid, "true")
        assert unknown.returncode == 255 and "unknown controller whaaat" in unknown.stderr
        missing = ocirun("exec", "--cgroup", "memory:none", cid, "true")
        assert missing.returncode == 255 and "none/cgroup.procs: no such file" in missing.stderr
    finally:
        ocirun("delete", "--force", cid, check=True)  # removes the sub-cgroup too
        if os.path.isdir(sub):
            os.rmdir(sub)


def test_cwd_the_user_cannot_enter_but_the_runtime_can(ocirun, make_bundle, cid, rootfs):
    bundle = make_bundle(["sh", "-c", "pwd; sleep 100"])
    own = Path(bundle.own_rootfs(rootfs))
    (own / "root").mkdir(exist_ok=True)
    os.chown(own / "root", 42, 42)
    os.chmod(own / "root", 0o700)
    bundle.config["process"]["user"] = {"uid": 43, "gid": 43}
    bundle.config["process"]["cwd"] = "/root"
    ocirun("run", "-d", "-b", bundle.write(), cid, check=True)
    result = ocirun("exec", "--user", "0", cid, "pwd")  # root without CAP_DAC_OVERRIDE
    assert (result.returncode, result.stdout) == (0, "/root\n")


def test_create_container_hooks_run_in_the_rootfs(ocirun, make_bundle, cid, tmp_path):
    bundle = make_bundle(["true"])
    out = tmp_path / "hook-cwd"
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"pwd > {out}"]}
    bundle.config["hooks"] = {"createContainer": [hook]}
    ocirun("run", "-b", bundle.write(), cid, check=True)
    assert out.read_text() == bundle.config["root"]["path"] + "\n"


@pytest.mark.parametrize("no_new_privileges", [True, False])
def test_start_container_hooks_run_under_the_seccomp_filter(
    ocirun, make_bundle, cid, no_new_privileges
):
    """As runc: startContainer hooks run last before execve, with the process's filter."""
    bundle = make_bundle(["true"])
    bundle.config["process"]["noNewPrivileges"] = no_new_privileges
    bundle.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}],
    }
    hook = {"path": "/bin/sh", "args": ["sh", "-c", "mkdir /dev/shm/foo"]}
    bundle.config["hooks"] = {"startContainer": [hook]}
    ocirun("create", "-b", bundle.write(), cid, check=True)
    result = ocirun("start", cid)
    assert result.returncode != 0
    assert "error running hook" in result.stderr and "bad system call" in result.stderr
    assert ocirun("state", cid).returncode != 0 or ocirun.state(cid)["status"] == "stopped"


def test_userns_bind_source_only_the_host_root_may_enter(
    ocirun, make_bundle, cid, userns_rootfs, tmp_path
):
    hidden = tmp_path / "hidden"
    (hidden / "dir").mkdir(parents=True)
    (hidden / "dir" / "foo.txt").write_text("seen\n")
    hidden.chmod(0o700)
    bundle = make_bundle(["cat", "/mnt/foo.txt"])
    add_userns(bundle.config, userns_rootfs)
    bundle.config["mounts"].append(
        {"source": str(hidden / "dir"), "destination": "/mnt", "options": ["bind"]}
    )
    result = ocirun("run", "-b", bundle.write(), cid)
    assert (result.returncode, result.stdout) == (0, "seen\n"), result.stderr


def test_a_second_container_in_a_used_cgroup_is_warned_about(ocirun, make_bundle, cid):
    first = make_bundle(["sleep", "100"])
    ocirun("run", "-d", "-b", first.write(), cid, check=True)
    second = make_bundle(["sleep", "100"])
    second.config["linux"]["cgroupsPath"] = first.config["linux"]["cgroupsPath"]
    result = ocirun("create", "-b", second.write(), cid + "-2")
    assert result.returncode == 0
    assert "container's cgroup is not empty: 1 process(es) found" in result.stderr
