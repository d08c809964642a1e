"""In-process tests of config.py: the spec's MUSTs that the schema cannot express, each
refused with one line naming the field, and the Config view."""

import copy

import pytest

from ocirun import config as cfg
from ocirun.errors import ConfigError
from ocirun.spec_template import default_spec


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs").mkdir()
    return str(tmp_path)


def spec_with(**linux) -> dict:
    config = copy.deepcopy(default_spec())
    config["linux"].update(linux)
    return config


def test_the_default_spec_passes(bundle):
    cfg.check(spec_with(), bundle)


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda c: c.update(ociVersion="2.0.0"), "ociVersion"),
        (lambda c: c["root"].update(path="missing"), "root.path"),
        (lambda c: c["process"].update(cwd="relative"), "process.cwd"),
        (lambda c: c["process"].update(args=[]), "process.args"),
        (lambda c: c["linux"]["namespaces"].append({"type": "pid"}), "linux.namespaces[5]"),
        (lambda c: c["linux"]["namespaces"].append({"type": "user"}), "gidMappings"),
        (lambda c: c["linux"].update(uidMappings=[{"containerID": 0, "hostID": 1, "size": 1}]),
         "linux.uidMappings"),
        (lambda c: c["linux"].update(namespaces=[{"type": "mount"}]), "hostname"),
        (lambda c: c["linux"].update(timeOffsets={"monotonic": {"secs": 1}}),
         "linux.timeOffsets"),
        (lambda c: c["linux"].update(sysctl={"kernel.panic": "1"}), "linux.sysctl"),
        (lambda c: c["linux"].update(sysctl={"net.ipv4.ip_forward": "1"},
                                     namespaces=[{"type": "uts"}]), "network namespace"),
        (lambda c: c["linux"].update(netDevices={"eth/0": {}}), "linux.netDevices.eth/0"),
        (lambda c: c["linux"]["namespaces"].append({"type": "cgroup", "path": "rel"}),
         "linux.namespaces[5].path"),
        (lambda c: c.update(hooks={"prestart": [{"path": "rel"}]}), "hooks.prestart[0].path"),
        (lambda c: c.update(annotations={"": "x"}), "annotations"),
        (lambda c: c["linux"].update(intelRdt={"closID": "x"}), "linux.intelRdt"),
    ],
)  # fmt: skip
def test_refused_with_the_field_named(bundle, change, field):
    config = spec_with()
    change(config)
    with pytest.raises(ConfigError) as refused:
        cfg.check(config, bundle)
    message = str(refused.value)
    assert message.startswith("config.json: ") and field in message and "\n" not in message


def test_a_relative_mount_destination_is_taken_from_the_root(bundle):
    config = spec_with()
    config["mounts"].append({"destination": "data", "type": "tmpfs", "source": "tmpfs"})
    cfg.check(config, bundle)
    assert config["mounts"][-1]["destination"] == "/data"


def test_load_names_the_bundle(tmp_path):
    with pytest.raises(ConfigError, match=f"no such file in bundle {tmp_path}"):
        cfg.load(str(tmp_path))
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(ConfigError, match="^config.json: .*line 1 column 2"):
        cfg.load(str(tmp_path))


def test_config_view():
    config = spec_with(namespaces=[{"type": "pid"}, {"type": "network", "path": "/proc/1/ns/net"}])
    spec = cfg.Config(config)
    assert spec.namespaces == {"pid": None, "network": "/proc/1/ns/net"}
    assert spec.new_namespace("pid") and not spec.new_namespace("network")
    assert not spec.new_namespace("user")
    assert spec.process is config["process"] and spec.linux is config["linux"]
    assert spec.wants_cgroup_mount()  # the default spec mounts /sys/fs/cgroup
    assert cfg.Config({"process": {}}).linux == {} and cfg.Config({}).mounts == []
