"""A hostile or unusual rootfs layout: /proc and /sys that are symlinks, a read-only /dev,
--no-pivot and the host's proc."""

import os
import shutil

import pytest
from helpers import create_fails, run_probe


@pytest.mark.parametrize("name, fstype", [("proc", "proc"), ("sys", "sysfs")])
def test_proc_or_sys_as_a_symlink_is_refused(ocirun, make_bundle, cid, rootfs, tmp_path,
                                             name, fstype):  # fmt: skip
    """Else the rootfs would choose where proc or sysfs gets mounted (outside, even)."""
    bundle = make_bundle()
    root = bundle.own_rootfs(rootfs)
    os.rmdir(os.path.join(root, name))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(str(elsewhere), os.path.join(root, name))
    error = create_fails(ocirun, bundle, cid)
    assert f'filesystem "{fstype}" must be mounted on ordinary directory' in error
    assert not os.listdir(elsewhere) and not os.path.ismount(elsewhere)


def test_a_read_only_dev_works(ocirun, make_bundle, cid):
    """Read-only only once its nodes and the mounts below it are there (as runc)."""
    bundle = make_bundle()
    for entry in bundle.config["mounts"]:
        if entry["destination"] == "/dev":
            entry["options"].append("ro")
    out = run_probe(ocirun, bundle, cid, "grep -E '^(tmpfs|devpts) /dev' /proc/mounts; "
                    "test -c /dev/null && echo null; touch /dev/x 2>&1; true")  # fmt: skip
    lines = out.splitlines()
    assert lines[0].startswith("tmpfs /dev tmpfs ro,")
    assert any(line.startswith("devpts /dev/pts") for line in lines)
    assert "null" in lines and "Read-only file system" in out


def test_a_read_only_tmpfs_is_read_only_after_its_copy_up(ocirun, make_bundle, cid):
    bundle = make_bundle()
    bundle.config["mounts"].append({"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                                    "options": ["ro", "tmpcopyup"]})  # fmt: skip
    out = run_probe(ocirun, bundle, cid, "cat /etc/hostname; touch /etc/x 2>&1; true")
    assert out.startswith("ocirun\n") and "Read-only file system" in out


def test_no_pivot_never_exposes_a_bare_proc(ocirun, make_bundle, cid):
    """A user namespace may mount a new proc only where a whole proc is visible: under
    --no-pivot the host's stays in the mount namespace above the chroot unless hidden."""
    if not shutil.which("unshare"):
        pytest.skip("no unshare")
    bundle = make_bundle()
    caps = bundle.config["process"]["capabilities"]
    for field in ("bounding", "permitted"):
        caps[field] = caps[field] + ["CAP_SETFCAP"]
    bundle.config["process"]["args"] = [
        "unshare", "-mrpf", "sh", "-c", "mount -t proc none /proc 2>&1 && echo MOUNTED",
    ]  # fmt: skip
    result = ocirun("run", "--no-pivot", "--bundle", bundle.write(), cid)
    assert "MOUNTED" not in result.stdout
    assert "ermission denied" in result.stdout, result


def test_a_read_only_dev_takes_the_console(ocirun, make_bundle, cid, tmp_path):
    from test_terminal import ConsoleSocket, read_until

    bundle = make_bundle(["sh"])
    bundle.config["process"]["terminal"] = True
    for entry in bundle.config["mounts"]:
        if entry["destination"] == "/dev":
            entry["options"].append("ro")
    console = ConsoleSocket(tmp_path / "console.sock")
    ocirun("create", "--console-socket", console.path, "-b", bundle.write(), cid, check=True)
    master = console.receive()
    try:
        ocirun("start", cid, check=True)
        os.write(master, b"test -c /dev/console && echo console-$((6*7)); exit\n")
        assert b"console-42" in read_until(master, b"console-42")
    finally:
        os.close(master)
