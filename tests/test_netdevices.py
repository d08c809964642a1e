"""linux.netDevices with real containers: host devices moved into the container's netns.

Each test makes its own host devices (ocitst<random>, a dummy or, where the kernel has no dummy
driver, an ifb), with TEST-NET addresses only, and deletes whatever of them is left on the host.
"""

import subprocess
import time
import uuid

import pytest
from helpers import OCIRUN, cgroup_dirs


def ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True)


def on_host(name: str) -> bool:
    return ip("link", "show", "dev", name).returncode == 0


@pytest.fixture
def host_device():
    """host_device(address=None) → the name of a new host device; all are deleted at teardown."""
    made = []

    def make(address: str | None = None) -> str:
        name = f"ocitst{uuid.uuid4().hex[:8]}"
        made.append(name)
        if ip("link", "add", name, "type", "dummy").returncode != 0:
            subprocess.run(["ip", "link", "add", name, "type", "ifb"], check=True)
        if address:
            subprocess.run(["ip", "addr", "add", address, "dev", name], check=True)
        return name

    yield make
    for name in made:
        if on_host(name):
            ip("link", "del", name)


def unused_name() -> str:
    return f"ocitst{uuid.uuid4().hex[:8]}"


def wait_for_ending(path, ending: str, timeout: float = 10.0) -> str:
    """The file's text once it ends with `ending`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text()
        if text.endswith(ending):
            return text
        time.sleep(0.02)
    raise AssertionError(f"the container printed only {text!r}")


def assert_nothing_left(ocirun, bundle, cid) -> None:
    assert ocirun("state", cid).returncode == 1
    assert ocirun.ids() == []
    assert not cgroup_dirs(bundle.config["linux"]["cgroupsPath"])


def test_devices_moved_renamed_up_with_their_addresses(ocirun, make_bundle, cid, host_device,
                                                       tmp_path):  # fmt: skip
    named = host_device("192.0.2.10/24")
    templated = host_device()
    script = "ip -o addr show dev eth7; ip -o link show dev eth7; ip -o link show; echo done"
    bundle = make_bundle(["sh", "-c", f"{script}; exec sleep 100"])
    bundle.config["linux"]["netDevices"] = {named: {"name": "eth7"}, templated: {"name": "n%d"}}
    output = tmp_path / "out"
    with open(output, "w") as out:
        proc = subprocess.Popen([OCIRUN, "--root", str(ocirun.root), "run", "-b", bundle.write(),
                                 cid], stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        text = wait_for_ending(output, "done\n")
        assert not on_host(named) and not on_host(templated)
    finally:
        ocirun("kill", cid, "KILL")
        proc.wait(timeout=10)
    assert "inet 192.0.2.10/24" in text and "scope global" in text
    eth7 = next(line for line in text.splitlines() if ": eth7: <" in line)
    assert ",UP" in eth7 or "<UP" in eth7
    assert ": n0: <" in text  # the kernel completed the template
    assert named not in text and templated not in text


def test_missing_host_device_fails_create_and_leaves_nothing(ocirun, make_bundle, cid):
    missing = unused_name()
    bundle = make_bundle()
    bundle.config["linux"]["netDevices"] = {missing: {"name": "eth7"}}
    result = ocirun("create", "-b", bundle.write(), cid)
    assert result.returncode == 1
    assert f"linux.netDevices.{missing}: no such network device on the host" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert_nothing_left(ocirun, bundle, cid)


def test_name_taken_in_container_fails_and_device_stays_on_host(ocirun, make_bundle, cid,
                                                                host_device):  # fmt: skip
    device = host_device("192.0.2.11/24")
    bundle = make_bundle()
    bundle.config["linux"]["netDevices"] = {device: {"name": "lo"}}
    result = ocirun("create", "-b", bundle.write(), cid)
    assert result.returncode == 1
    assert f"linux.netDevices.{device}: a network device named 'lo' already exists" in (
        result.stderr
    )
    assert_nothing_left(ocirun, bundle, cid)
    assert on_host(device)  # checked before the move: not moved, so not destroyed
    assert "192.0.2.11/24" in ip("-o", "addr", "show", "dev", device).stdout


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda linux: linux["namespaces"].remove({"type": "network"}), "new network namespace"),
        (lambda linux: linux["netDevices"]["x"].update(name="a/b"), "not a valid device name"),
        (lambda linux: linux["netDevices"]["x"].update(name="a%s"), "not a valid device name"),
        (lambda linux: linux["netDevices"]["x"].update(name="sixteen-chars-xx"), "not a valid"),
    ],
)
def test_config_errors(ocirun, make_bundle, cid, edit, message):
    bundle = make_bundle()
    bundle.config["linux"]["netDevices"] = {"x": {}}
    edit(bundle.config["linux"])
    result = ocirun("create", "-b", bundle.write(), cid)
    assert result.returncode == 1
    assert "linux.netDevices" in result.stderr and message in result.stderr
    assert_nothing_left(ocirun, bundle, cid)
