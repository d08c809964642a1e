"""Lifecycle hooks with real containers: order, state on stdin, args, env, timeouts, failures."""

import json

from helpers import create_fails, host_mounts

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def recorder(log: str, kind: str) -> dict:
    """A hook that appends `kind <state JSON>` to log."""
    return {"path": "/bin/sh", "args": ["sh", "-c", f'echo "{kind} $(cat)" >> {log}']}


def records(path) -> list[tuple[str, dict]]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [(kind, json.loads(state)) for kind, _, state in (ln.partition(" ") for ln in lines)]


def hooked_bundle(make_bundle, tmp_path, args=("sleep", "60")):
    """A bundle with every kind of hook recording into shared/log (/shared in the container)."""
    shared = tmp_path / "shared"
    shared.mkdir(parents=True)
    bundle = make_bundle(list(args))
    bundle.config["mounts"].append({"destination": "/shared", "type": "bind",
                                    "source": str(shared), "options": ["rbind", "rw"]})  # fmt: skip
    host_log, inside_log = str(shared / "log"), "/shared/log"
    bundle.config["hooks"] = {
        kind: [recorder(inside_log if kind == "startContainer" else host_log, kind)]
        for kind in KINDS
    }
    return bundle, shared / "log"


def test_hooks_run_in_order_with_the_state_on_stdin(ocirun, make_bundle, cid, tmp_path):
    bundle, log = hooked_bundle(make_bundle, tmp_path)
    ocirun("create", "--bundle", bundle.write(), cid, check=True)
    host_pid = ocirun.state(cid)["pid"]
    assert [k for k, _ in records(log)] == ["prestart", "createRuntime", "createContainer"]
    ocirun("start", cid, check=True)
    assert [k for k, _ in records(log)][3:] == ["startContainer", "poststart"]
    ocirun("delete", "--force", cid, check=True)
    seen = records(log)
    assert [k for k, _ in seen] == list(KINDS)
    states = dict(seen)
    assert all(s["id"] == cid and s["bundle"] == bundle.write() for s in states.values())
    assert states["prestart"]["status"] == states["createRuntime"]["status"] == "creating"
    assert states["createRuntime"]["pid"] == host_pid  # runtime namespace: the host's pid
    assert states["createContainer"]["pid"] == 1  # container namespace: the container's pid
    assert states["startContainer"]["pid"] == 1
    assert states["startContainer"]["status"] == "created"
    assert states["poststart"]["status"] == "running"
    assert states["poststop"]["status"] == "stopped"


def test_hook_args_and_env(ocirun, make_bundle, cid, tmp_path):
    out = tmp_path / "out"
    script = f'echo "$0 $1"; env > {out}.env'
    bundle = make_bundle()
    bundle.config["hooks"] = {"prestart": [
        {"path": "/bin/sh", "args": ["sh", "-c", f"({script}) > {out}", "zero", "a1"],
         "env": ["FOO=bar"]},
    ]}  # fmt: skip
    assert ocirun("run", "--bundle", bundle.write(), cid).returncode == 0
    assert out.read_text() == "zero a1\n"
    env = (tmp_path / "out.env").read_text().splitlines()
    assert "FOO=bar" in env
    assert not any(line.startswith("PYTEST_CURRENT_TEST=") for line in env)  # not ocirun's env


def test_a_failing_create_time_hook_fails_create_and_tears_down(ocirun, make_bundle, cid, tmp_path):
    for kind in ("prestart", "createRuntime", "createContainer"):
        bundle, log = hooked_bundle(make_bundle, tmp_path / kind)
        bundle.config["hooks"][kind].append({"path": "/bin/sh", "args": ["sh", "-c", "exit 7"]})
        before = host_mounts(tmp_path)
        error = create_fails(ocirun, bundle, f"{cid}-{kind}")
        assert f"hooks.{kind}[1]" in error and "status 7" in error
        assert host_mounts(tmp_path) == before
        assert [k for k, _ in records(log)][-1] == "poststop"  # step 12, then 13


def test_a_hook_timeout_fails_create(ocirun, make_bundle, cid):
    bundle = make_bundle()
    bundle.config["hooks"] = {"createRuntime": [
        {"path": "/bin/sh", "args": ["sh", "-c", "sleep 10"], "timeout": 1}
    ]}  # fmt: skip
    assert "timed out" in create_fails(ocirun, bundle, cid)


def test_a_relative_hook_path_is_refused(ocirun, make_bundle, cid):
    bundle = make_bundle()
    bundle.config["hooks"] = {"prestart": [{"path": "bin/true"}]}
    assert "not absolute" in create_fails(ocirun, bundle, cid)


def test_a_failing_start_container_hook_stops_the_container(ocirun, make_bundle, cid, tmp_path):
    bundle, log = hooked_bundle(make_bundle, tmp_path, ["touch", "/shared/ran"])
    bundle.config["hooks"]["startContainer"] = [
        {"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}
    ]  # fmt: skip
    ocirun("create", "--bundle", bundle.write(), cid, check=True)
    result = ocirun("start", cid)
    assert result.returncode != 0 and "startContainer[0]" in result.stderr
    assert ocirun("state", cid).returncode != 0
    assert not (log.parent / "ran").exists()
    assert [k for k, _ in records(log)][-1] == "poststop"


def test_a_failing_poststart_hook_stops_the_container(ocirun, make_bundle, cid, tmp_path):
    bundle, log = hooked_bundle(make_bundle, tmp_path)
    bundle.config["hooks"]["poststart"] = [{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]
    ocirun("create", "--bundle", bundle.write(), cid, check=True)
    pid = ocirun.state(cid)["pid"]
    assert ocirun("start", cid).returncode != 0
    assert ocirun("state", cid).returncode != 0
    with open(f"/proc/{pid}/stat") as f:  # dead (a zombie until our subreaper reaps it) or gone
        assert f.read().rsplit(")", 1)[1].split()[0] in "ZX"


def test_a_failing_poststop_hook_is_logged_and_the_rest_run(ocirun, make_bundle, cid, tmp_path):
    bundle, log = hooked_bundle(make_bundle, tmp_path, ["true"])
    bundle.config["hooks"]["poststop"].insert(
        0, {"path": "/bin/sh", "args": ["sh", "-c", "exit 4"]}
    )
    result = ocirun("run", "--bundle", bundle.write(), cid)
    assert result.returncode == 0
    assert "poststop[0]" in result.stderr
    assert [k for k, _ in records(log)][-1] == "poststop"
