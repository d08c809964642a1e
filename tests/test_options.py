"""In-process tests of the command line's parsing: runc-style flags, Go durations, update's
sizes and resources, and exec's process built from flags."""

import pytest

from ocirun.cli import GLOBAL_OPTIONS
from ocirun.cli.options import opt, parse, parse_duration
from ocirun.errors import UsageError
from ocirun.process.exec_spec import parse_user, process_from_flags
from ocirun.resources import from_options, merge, parse_size

OPTIONS = [
    opt("--bundle", "-b", default="."),
    opt("--detach", "-d", kind=bool),
    opt("--preserve-fds", kind=int, default=0),
    opt("--env", "-e", kind=list),
]


def test_defaults():
    values, args = parse(OPTIONS, ["id"])
    assert values == {"bundle": ".", "detach": False, "preserve_fds": 0, "env": []}
    assert args == ["id"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--bundle", "/b", "-d", "--preserve-fds", "2", "-e", "A=1", "--env=B=2", "id"],
        ["id", "--bundle=/b", "--detach=true", "--preserve-fds=2", "-e", "A=1", "-e", "B=2"],
    ],
)
def test_spellings_and_orders(argv):
    values, args = parse(OPTIONS, argv)
    assert values == {"bundle": "/b", "detach": True, "preserve_fds": 2, "env": ["A=1", "B=2"]}
    assert args == ["id"]


def test_list_default_is_not_shared_between_parses():
    first, _ = parse(OPTIONS, ["-e", "A=1"])
    second, _ = parse(OPTIONS, [])
    assert first["env"] == ["A=1"] and second["env"] == []


def test_stop_at_first_arg_keeps_the_rest_as_arguments():
    values, args = parse(OPTIONS, ["-d", "id", "sh", "-c", "--bundle"], stop_at_first_arg=True)
    assert values["detach"] is True and args == ["id", "sh", "-c", "--bundle"]


def test_double_dash_ends_the_flags():
    values, args = parse(OPTIONS, ["--", "-d"])
    assert values["detach"] is False and args == ["-d"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--nope"], "flag provided but not defined: --nope"),
        (["--bundle"], "flag needs an argument: --bundle"),
        (["--preserve-fds", "x"], "not an integer"),
        (["--detach=maybe"], "not a boolean"),
    ],
)
def test_bad_flags(argv, message):
    with pytest.raises(UsageError, match=message):
        parse(OPTIONS, argv)


def test_global_flags_stop_at_the_command():
    values, rest = parse(GLOBAL_OPTIONS, ["--root", "/r", "kill", "--all", "id"], True)
    assert values["root"] == "/r" and values["systemd_cgroup"] is False
    assert rest == ["kill", "--all", "id"]


@pytest.mark.parametrize(
    "text, seconds",
    [("5s", 5.0), ("1m30s", 90.0), ("250ms", 0.25), ("1.5h", 5400.0), ("100us", 1e-4),
     ("0", 0.0), ("-2s", -2.0)],  # fmt: skip
)
def test_go_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "s", "5x", "1..5s", "."])
def test_bad_go_durations(text):
    with pytest.raises(UsageError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    "text, size",
    [("1024", 1024), ("64m", 64 << 20), ("1.5GiB", 3 << 29), ("2k", 2048), ("-1", -1),
     ("10 MB", 10 << 20)],
)  # fmt: skip
def test_update_sizes(text, size):
    assert parse_size("memory", text) == size


@pytest.mark.parametrize("text", ["", "m", "12q", "1.2.3m"])
def test_bad_update_sizes(text):
    with pytest.raises(UsageError, match="--memory-swap"):
        parse_size("memory_swap", text)


def test_update_flags_over_the_resources_file(tmp_path):
    source = tmp_path / "r.json"
    source.write_text('{"memory": {"limit": 1, "swap": 2}, "cpu": {"shares": 3}}')
    opts = {flag: None for flag in ("blkio_weight", "cpu_period", "cpu_quota", "cpu_share",
            "cpu_rt_period", "cpu_rt_runtime", "cpuset_cpus", "cpuset_mems", "memory",
            "memory_reservation", "memory_swap", "kernel_memory", "kernel_memory_tcp",
            "pids_limit")}  # fmt: skip
    opts.update(resources=str(source), memory="1m", pids_limit=10)
    assert from_options(opts) == {
        "memory": {"limit": 1 << 20, "swap": 2}, "cpu": {"shares": 3}, "pids": {"limit": 10},
    }  # fmt: skip


def test_update_refuses_a_non_object(tmp_path):
    source = tmp_path / "r.json"
    source.write_text("[1]")
    with pytest.raises(UsageError, match="must hold a JSON object"):
        from_options({"resources": str(source), **{f: None for f in ("memory",)}})


def test_merge_lays_sections_over_each_other():
    stored = {"memory": {"limit": 1, "swap": 2}, "cpu": {"shares": 3}}
    merge(stored, {"memory": {"limit": 5}, "pids": {"limit": 4}})
    assert stored == {"memory": {"limit": 5, "swap": 2}, "cpu": {"shares": 3},
                      "pids": {"limit": 4}}  # fmt: skip


EXEC_FLAGS = {"tty": False, "cwd": None, "env": [], "user": None, "additional_gids": [],
              "no_new_privs": False, "cap": []}  # fmt: skip


def test_exec_process_from_flags_copies_what_it_changes():
    base = {"args": ["sh"], "cwd": "/", "env": ["PATH=/bin"], "consoleSize": {"height": 1},
            "user": {"uid": 1, "gid": 1, "additionalGids": [5]},
            "capabilities": {"bounding": ["CAP_KILL"]}}  # fmt: skip
    flags = dict(EXEC_FLAGS, tty=True, cwd="/tmp", env=["A=1"], user="7:8",
                 additional_gids=["9"], no_new_privs=True, cap=["CAP_CHOWN"])  # fmt: skip
    process = process_from_flags(base, flags, ["ls", "-l"])
    assert process["args"] == ["ls", "-l"] and process["terminal"] is True
    assert "consoleSize" not in process and process["cwd"] == "/tmp"
    assert process["env"] == ["PATH=/bin", "A=1"]
    assert process["user"] == {"uid": 7, "gid": 8, "additionalGids": [5, 9]}
    assert process["noNewPrivileges"] is True
    assert process["capabilities"]["bounding"] == ["CAP_KILL", "CAP_CHOWN"]
    assert process["capabilities"]["ambient"] == ["CAP_CHOWN"]
    assert base["env"] == ["PATH=/bin"] and base["user"]["uid"] == 1  # the container's is intact


def test_exec_needs_a_command_and_numeric_users():
    with pytest.raises(UsageError, match="expects a command"):
        process_from_flags({"args": ["sh"]}, EXEC_FLAGS, [])
    with pytest.raises(UsageError, match="expects a number"):
        parse_user("root", {"uid": 0})
