"""Mounts with real containers: bind options, tmpfs, recursive attributes, remount, masked and
read-only paths, propagation, idmapped mounts, and destinations that try to leave the rootfs."""

import os
import subprocess

from helpers import (
    USERNS_MAPPING,
    add_userns,
    create_fails,
    host_mounts,
    mount_line,
    run_probe,
)  # fmt: skip


def bind(dest: str, source: str, *options: str) -> dict:
    return {"destination": dest, "type": "bind", "source": source, "options": ["rbind", *options]}


def test_rw_bind_writes_through_ro_bind_does_not(ocirun, make_bundle, cid, tmp_path):
    (tmp_path / "rw").mkdir()
    (tmp_path / "ro").mkdir()
    bundle = make_bundle()
    bundle.config["mounts"] += [bind("/rw", str(tmp_path / "rw"), "rw"),
                                bind("/ro", str(tmp_path / "ro"), "ro")]  # fmt: skip
    out = run_probe(ocirun, bundle, cid,
                    "echo yes > /rw/marker; echo no > /ro/marker || echo refused")  # fmt: skip
    assert (tmp_path / "rw" / "marker").read_text() == "yes\n"
    assert not (tmp_path / "ro" / "marker").exists()
    assert "refused" in out


def test_bind_flags_show_in_mountinfo(ocirun, make_bundle, cid, tmp_path):
    (tmp_path / "src").mkdir()
    bundle = make_bundle()
    bundle.config["mounts"].append(
        bind("/flags", str(tmp_path / "src"), "nosuid", "nodev", "noexec", "nodiratime")
    )
    line = mount_line(run_probe(ocirun, bundle, cid, "cat /proc/self/mountinfo"), "/flags")
    options = line.split()[5].split(",")
    for flag in ("nosuid", "nodev", "noexec", "nodiratime"):
        assert flag in options, line


def test_tmpfs_size_and_mode(ocirun, make_bundle, cid):
    bundle = make_bundle()
    options = ["size=1m", "mode=750", "strictatime"]
    bundle.config["mounts"].append(
        {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": options}
    )
    out = run_probe(ocirun, bundle, cid, "cat /proc/self/mountinfo; stat -c %a /scratch")
    line = mount_line(out, "/scratch")
    assert "size=1024k" in line and "mode=750" in line and "relatime" not in line
    assert out.splitlines()[-1] == "750"


def test_tmpcopyup_starts_the_tmpfs_with_the_directory_contents(ocirun, make_bundle, cid):
    bundle = make_bundle()
    bundle.config["mounts"].append(
        {"destination": "/etc", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]}
    )
    probe = "cat /proc/self/mountinfo; stat -c '%a %u' /etc/passwd; echo x > /etc/new && echo rw"
    out = run_probe(ocirun, bundle, cid, probe)
    assert mount_line(out, "/etc").split(" - ")[1].startswith("tmpfs")
    assert out.splitlines()[-2:] == ["644 0", "rw"]  # copied with its mode, writable (tmpfs)


def test_recursive_read_only_reaches_submounts(ocirun, make_bundle, cid, tmp_path):
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(src / "sub")], check=True)
    bundle = make_bundle()
    bundle.config["mounts"].append(bind("/tree", str(src), "rro", "rnoatime"))
    out = run_probe(ocirun, bundle, cid, "cat /proc/self/mountinfo")
    options = mount_line(out, "/tree/sub").split()[5].split(",")
    assert "ro" in options and "noatime" in options


def test_ratime_clears_noatime_below(ocirun, make_bundle, cid, tmp_path):
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "noatime", "tmpfs", str(src / "sub")], check=True)
    bundle = make_bundle()
    bundle.config["mounts"].append(bind("/tree", str(src), "ratime"))
    out = run_probe(ocirun, bundle, cid, "cat /proc/self/mountinfo")
    assert "noatime" not in mount_line(out, "/tree/sub").split()[5]


def test_remount_changes_the_mount_already_there(ocirun, make_bundle, cid):
    bundle = make_bundle()
    bundle.config["mounts"] += [
        {"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
        {"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["remount", "ro"]},
    ]
    line = mount_line(run_probe(ocirun, bundle, cid, "cat /proc/self/mountinfo"), "/mnt")
    assert line.split()[5].startswith("ro") and "size=1024k" in line
    out = run_probe(ocirun, bundle, cid + "-2", "grep -c ' /mnt ' /proc/self/mountinfo")
    assert out.strip() == "1"  # not a second tmpfs stacked on the first


def test_default_filesystems(ocirun, make_bundle, cid):
    bundle = make_bundle()
    out = run_probe(ocirun, bundle, cid, "cat /proc/self/mountinfo")
    for path, fstype in (("/proc", "proc"), ("/sys", "sysfs"), ("/dev", "tmpfs"),
                         ("/dev/pts", "devpts"), ("/dev/mqueue", "mqueue"),
                         ("/dev/shm", "tmpfs")):  # fmt: skip
        assert mount_line(out, path).split(" - ")[1].split()[0] == fstype


def test_cgroup_mount_shows_the_containers_cgroup_read_only(ocirun, make_bundle, cid):
    bundle = make_bundle()
    bundle.config["linux"]["namespaces"].append({"type": "cgroup"})
    out = run_probe(ocirun, bundle, cid, "cat /proc/self/mountinfo; touch /sys/fs/cgroup/x/y || :")
    lines = [line for line in out.splitlines() if " /sys/fs/cgroup/" in line]
    assert lines and all(line.split()[5].startswith("ro") for line in lines)
    assert all(line.split()[3] == "/" for line in lines)  # rooted at the container's cgroup


def test_read_only_root(ocirun, make_bundle, cid):
    bundle = make_bundle()
    assert bundle.config["root"]["readonly"]
    out = run_probe(ocirun, bundle, cid, "touch /newfile 2>&1 || echo refused")
    assert "refused" in out


def test_masked_and_read_only_paths(ocirun, make_bundle, cid, rootfs):
    bundle = make_bundle()
    bundle.own_rootfs(rootfs)
    bundle.config["linux"]["maskedPaths"] = ["/etc/passwd", "/home", "/no/such/path"]
    bundle.config["linux"]["readonlyPaths"] = ["/tmp"]
    script = (
        "wc -c < /etc/passwd; ls -A /home | wc -l; touch /home/x 2>/dev/null || echo home-ro; "
        "touch /tmp/x 2>/dev/null || echo tmp-ro; cat /proc/self/mountinfo"
    )
    out = run_probe(ocirun, bundle, cid, script)
    lines = out.splitlines()
    assert lines[:4] == ["0", "0", "home-ro", "tmp-ro"]
    assert " - tmpfs " in mount_line(out, "/home")
    assert mount_line(out, "/tmp").split()[5].startswith("ro")


def test_rootfs_propagation_private_on_a_shared_mount(ocirun, make_bundle, cid, tmp_path, rootfs):
    prop = tmp_path / "prop"
    prop.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(prop)], check=True)
    subprocess.run(["mount", "--make-shared", str(prop)], check=True)
    subprocess.run(["cp", "-a", rootfs, str(prop / "rootfs")], check=True)
    bundle = make_bundle()
    bundle.config["root"] = {"path": str(prop / "rootfs"), "readonly": False}
    bundle.config["linux"]["rootfsPropagation"] = "private"
    line = mount_line(run_probe(ocirun, bundle, cid, "cat /proc/self/mountinfo"), "/")
    assert "shared:" not in line and "master:" not in line


def test_rootfs_propagation_unbindable(ocirun, make_bundle, cid):
    bundle = make_bundle()
    bundle.config["linux"]["rootfsPropagation"] = "unbindable"
    line = mount_line(run_probe(ocirun, bundle, cid, "cat /proc/self/mountinfo"), "/")
    assert "unbindable" in line


def test_idmapped_bind_mount(ocirun, make_bundle, cid, tmp_path, userns_rootfs):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "owned").touch()  # owned by the host's root
    bundle = make_bundle()
    add_userns(bundle.config, userns_rootfs)
    entry = bind("/mnt", str(shared), "idmap")  # the container's root cannot create mount points
    entry["uidMappings"] = entry["gidMappings"] = USERNS_MAPPING
    bundle.config["mounts"].append(entry)
    assert run_probe(ocirun, bundle, cid, "stat -c '%u %g' /mnt/owned") == "0 0\n"


def test_idmap_without_mappings_or_user_namespace_is_refused(ocirun, make_bundle, cid, tmp_path):
    bundle = make_bundle()
    bundle.config["mounts"].append(bind("/shared", str(tmp_path), "idmap"))
    assert "user namespace" in create_fails(ocirun, bundle, cid)


def hostile_rootfs(bundle, rootfs, host_dir) -> str:
    """A writable rootfs whose /evil is an absolute symlink to a host directory and whose
    /etc/loop points back above itself; returns the rootfs path."""
    target = bundle.own_rootfs(rootfs)
    os.symlink(str(host_dir), os.path.join(target, "evil"))
    os.symlink("../../../../../../../../" + str(host_dir).lstrip("/"),
               os.path.join(target, "dotdot"))  # fmt: skip
    return target


def test_mount_destinations_cannot_leave_the_rootfs(ocirun, make_bundle, cid, tmp_path, rootfs):
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    (host_dir / "secret").write_text("keep")
    (tmp_path / "payload").write_text("payload")
    bundle = make_bundle()
    target = hostile_rootfs(bundle, rootfs, host_dir)
    bundle.config["mounts"] += [
        bind("/evil/secret", str(tmp_path / "payload")),
        bind("/dotdot/secret", str(tmp_path / "payload")),
        {"destination": "/../../../../" + str(host_dir).lstrip("/") + "/t", "type": "tmpfs",
         "source": "tmpfs"},
    ]  # fmt: skip
    bundle.config["linux"]["maskedPaths"] = ["/evil/secret"]
    bundle.config["linux"]["readonlyPaths"] = ["/dotdot"]
    bundle.config["linux"]["devices"] = [
        {"path": "/evil/devnull", "type": "c", "major": 1, "minor": 3}
    ]
    before = host_mounts(tmp_path)
    script = "cat /evil/secret; touch /dotdot/x 2>/dev/null || echo ro; ls /evil"
    out = run_probe(ocirun, bundle, cid, script)
    assert out.split() == ["ro", "devnull", "secret", "t"]  # the bind masked: both names lead in
    assert (host_dir / "secret").read_text() == "keep"
    assert sorted(os.listdir(host_dir)) == ["secret"]  # no /t, no devnull on the host
    assert host_mounts(tmp_path) == before
    inside = os.path.join(target, str(host_dir).lstrip("/"))
    assert os.path.exists(os.path.join(inside, "devnull"))


def test_cwd_through_a_symlink_stays_inside(ocirun, make_bundle, cid, tmp_path, rootfs):
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    (host_dir / "host-only").touch()
    bundle = make_bundle()
    target = hostile_rootfs(bundle, rootfs, host_dir)
    os.makedirs(os.path.join(target, str(host_dir).lstrip("/")))
    bundle.config["process"]["cwd"] = "/evil"
    assert run_probe(ocirun, bundle, cid, "ls -A") == ""


def test_overlay_mount(ocirun, make_bundle, cid, tmp_path):
    for name in ("lower", "upper", "work"):
        (tmp_path / name).mkdir()
    (tmp_path / "lower" / "from-lower").write_text("low")
    bundle = make_bundle()
    options = [f"lowerdir={tmp_path / 'lower'}", f"upperdir={tmp_path / 'upper'}",
               f"workdir={tmp_path / 'work'}"]  # fmt: skip
    bundle.config["mounts"].append(
        {"destination": "/ov", "type": "overlay", "source": "overlay", "options": options}
    )
    out = run_probe(ocirun, bundle, cid, "cat /ov/from-lower; echo up > /ov/new")
    assert out == "low"
    assert (tmp_path / "upper" / "new").read_text() == "up\n"
    assert not (tmp_path / "lower" / "new").exists()


def test_bind_of_a_single_file(ocirun, make_bundle, cid, tmp_path):
    (tmp_path / "hostname").write_text("from-the-bundle\n")
    bundle = make_bundle()
    bundle.config["mounts"].append(bind("/etc/hostname", str(tmp_path / "hostname"), "ro"))
    assert run_probe(ocirun, bundle, cid, "cat /etc/hostname") == "from-the-bundle\n"
