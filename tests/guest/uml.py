"""Boot a user-mode-linux guest with cgroup v2, run one command in it, power it off.

The guest is Debian's `linux.uml` kernel (6.1) run as an ordinary process. Its root is the host's
root, read-only (hostfs), under a copy-on-write overlay whose upper layer is guest memory: the
guest sees the host's files at the same paths and may write anywhere; nothing it writes reaches
the host except the run directory (mounted read-write at RUN_DIR). /run, /tmp, /dev/shm are fresh
tmpfs, cgroup2 is mounted on /sys/fs/cgroup. With systemd=True, systemd is PID 1 and runs the
command as a service once D-Bus is up. See tests/guest/README.md.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

KERNEL = "/usr/bin/linux.uml"
MODULES = "/usr/lib/uml/modules"
HERE = Path(__file__).resolve().parent
RUN_DIR = "/run/guest"  # the host's run directory, read-write, inside the guest
CHECKOUT = Path(__file__).resolve().parents[2]  # this repository, which the guest runs from
OUT_DIR = f"{RUN_DIR}/out"  # files the command leaves here come back in GuestResult.files
IN_GUEST_ENV = "OCIRUN_IN_GUEST"  # set to "1" for the command in the guest
DISK = "/dev/ubda"  # the guest's block device (a sparse file in the run directory)
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class GuestError(Exception):
    """The guest did not boot, or did not report the command's exit status."""


@dataclass
class GuestResult:
    returncode: int  # the command's exit status (128+N if killed by signal N)
    stdout: bytes
    stderr: bytes
    console: str  # kernel (and systemd) console output, for diagnosis
    seconds: float  # from starting the kernel to its exit
    files: dict[str, bytes]  # what the command wrote into OUT_DIR (its $GUEST_OUT), by name

    @property
    def output(self) -> str:
        """stdout and stderr, decoded, for assertion messages."""
        return self.stdout.decode(errors="replace") + self.stderr.decode(errors="replace")


def unavailable() -> str | None:
    """Why a guest cannot boot here (None when it can)."""
    if os.geteuid() != 0:
        return "the guest harness runs as root (the guest mounts the host's root)"
    if not os.access(KERNEL, os.X_OK):
        return f"{KERNEL} is missing (apt-get install user-mode-linux)"
    if not os.path.isdir(MODULES):
        return f"{MODULES} is missing (apt-get install user-mode-linux)"
    if shutil.which("gcc") is None:
        return "gcc is missing (it builds tests/guest/xstate_shim.c)"
    if not os.access("/bin/busybox", os.X_OK):
        return "/bin/busybox is missing (apt-get install busybox-static)"
    return None


def run(
    argv: list[str],
    *,
    systemd: bool = False,
    timeout: float = 600,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    memory: str = "1536M",
    disk_mb: int = 256,
    stdout: int | None = None,
    stderr: int | None = None,
) -> GuestResult:
    """Boot a guest, run argv in it (as root, in cwd: the host's cwd by default), power off.

    stdout/stderr: file descriptors to stream the command's output to (live); by default it
    is captured into the result. Raises GuestError if the guest reports no exit status within
    timeout seconds; the kernel and all its processes are killed either way.
    """
    reason = unavailable()
    if reason:
        raise GuestError(reason)
    with tempfile.TemporaryDirectory(prefix="ocirun-guest-") as tmp:
        run_dir = Path(tmp)
        (run_dir / "out").mkdir()
        _write_guest_files(run_dir, argv, systemd, cwd or os.getcwd(), env or {})
        with open(run_dir / "disk.img", "wb") as disk:
            disk.truncate(disk_mb << 20)
        shim = _build_shim(run_dir)
        out_path, err_path = run_dir / "stdout", run_dir / "stderr"
        with (
            open(out_path, "wb") as out_file,
            open(err_path, "wb") as err_file,
            open(run_dir / "console", "wb") as console,
        ):
            # fresh descriptors (3 and up) that the kernel inherits under the same numbers
            out_fd = os.dup(stdout if stdout is not None else out_file.fileno())
            err_fd = os.dup(stderr if stderr is not None else err_file.fileno())
            try:
                seconds = _boot(run_dir, shim, memory, console, out_fd, err_fd, timeout)
            finally:
                os.close(out_fd)
                os.close(err_fd)
        console_text = (run_dir / "console").read_text(errors="replace")
        status_file = run_dir / "status"
        if not status_file.exists():
            raise GuestError(
                f"the guest reported no exit status within {timeout:g} s; its console ends:\n"
                + "\n".join(console_text.splitlines()[-40:])
            )
        return GuestResult(
            int(status_file.read_text().strip() or "255"),
            out_path.read_bytes(),
            err_path.read_bytes(),
            console_text,
            seconds,
            {f.name: f.read_bytes() for f in (run_dir / "out").iterdir() if f.is_file()},
        )


def _boot(run_dir: Path, shim: Path, memory: str, console, out_fd, err_fd, timeout) -> float:
    """Run the kernel until it powers off (or timeout); kill whatever of it is left."""
    # con0: the kernel's console; tty1 and tty2 carry the command's stdout and stderr
    cmdline = [
        KERNEL,
        f"mem={memory}",
        "root=/dev/root", "rootfstype=hostfs", "rootflags=/", "ro",
        f"init={run_dir}/init",
        f"umid=ocirun-guest-{os.getpid()}-{run_dir.name[-8:]}",
        f"uml_dir={run_dir}/uml",
        f"ubd0={run_dir}/disk.img",
        "con=null", "con0=null,fd:1", f"con1=null,fd:{out_fd}", f"con2=null,fd:{err_fd}",
        "ssl=null",
        "loglevel=4",
        "systemd.show_status=0",
    ]  # fmt: skip
    env = {
        "PATH": os.environ.get("PATH", GUEST_PATH),
        "TMPDIR": str(run_dir),  # the kernel's memory file, unlinked as soon as made
        "LD_PRELOAD": str(shim),
    }
    (run_dir / "uml").mkdir()
    started = time.monotonic()
    kernel = subprocess.Popen(
        cmdline,
        stdin=subprocess.DEVNULL,
        stdout=console,
        stderr=subprocess.STDOUT,
        pass_fds=(out_fd, err_fd),
        env=env,
        start_new_session=True,
    )
    try:
        kernel.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    finally:
        _kill_session(kernel)
    return time.monotonic() - started


def _kill_session(kernel: subprocess.Popen) -> None:
    """SIGKILL every process of the kernel's session (its guest processes are host processes)."""
    sid = kernel.pid
    for _ in range(100):
        members = _session_members(sid)
        if kernel.poll() is None:
            members.add(kernel.pid)
        if not members:
            return
        for pid in members:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            kernel.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            pass
    raise GuestError(f"processes of the guest's session {sid} survive SIGKILL")


def _session_members(sid: int) -> set[int]:
    members = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        # fields after the name: state, ppid, pgrp, session; a zombie is dead already (its
        # new parent reaps it when it gets to it)
        if int(fields[3]) == sid and fields[0] != "Z":
            members.add(int(entry))
    return members


def _build_shim(run_dir: Path) -> Path:
    """Compile the ptrace wrapper the 6.1 kernel needs on hosts with AVX-512 (xstate_shim.c)."""
    target = run_dir / "xstate_shim.so"
    subprocess.run(
        ["gcc", "-O2", "-shared", "-fPIC", "-o", str(target), str(HERE / "xstate_shim.c"), "-ldl"],
        check=True,
    )
    return target


def _write_guest_files(run_dir: Path, argv, systemd: bool, cwd: str, env: dict) -> None:
    """The guest's init (stage 1 on the read-only root, stage 2 on the overlay) and command."""
    release = sorted(os.listdir(MODULES))[-1]
    exports = {
        "PATH": GUEST_PATH,
        "HOME": "/root",
        "LANG": "C.UTF-8",
        IN_GUEST_ENV: "1",
        "GUEST_OUT": OUT_DIR,
        **env,
    }
    command = "\n".join(
        [
            "#!/bin/sh",
            "# the command, with its stdout and stderr on tty1 and tty2 (the host's fds)",
            *(f"export {k}={shlex.quote(v)}" for k, v in exports.items()),
            "stty -F /dev/tty1 raw -echo 2>/dev/null; stty -F /dev/tty2 raw -echo 2>/dev/null",
            "# through pipes, so that the command does not see a terminal",
            "mkfifo /run/guest-stdout /run/guest-stderr",
            "cat /run/guest-stdout >/dev/tty1 & cat /run/guest-stderr >/dev/tty2 &",
            f"cd {shlex.quote(cwd)} || exit 125",
            f"{shlex.join(argv)} </dev/null >/run/guest-stdout 2>/run/guest-stderr",
            "status=$?",
            "wait",
            f"echo $status >{RUN_DIR}/status",
            "sync",
        ]
    )
    stage1 = f"""#!/bin/sh
# guest PID 1, stage 1: make a writable overlay over the read-only host root and move into it
mount -t proc proc /proc
mount -t tmpfs -o mode=755 tmpfs /run
/bin/busybox insmod {MODULES}/{release}/kernel/fs/overlayfs/overlay.ko
mkdir /run/overlay /run/overlay/upper /run/overlay/work /run/overlay/root
mount -t overlay overlay \\
    -o lowerdir=/,upperdir=/run/overlay/upper,workdir=/run/overlay/work /run/overlay/root
cd /run/overlay/root
mkdir -p .old-root
pivot_root . .old-root
exec chroot . {run_dir}/stage2
"""
    unit = f"""[Unit]
Description=the guest's test command
Wants=dbus.service
After=dbus.service
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
ExecStart=/bin/sh {RUN_DIR}/command
"""
    last = (
        "mkdir -p /run/systemd/system\n"
        f"cp {RUN_DIR}/guest.service /run/systemd/system/guest.service\n"
        "exec /lib/systemd/systemd --unit=guest.service --log-target=console\n"
        if systemd
        else f"/bin/sh {RUN_DIR}/command\nsync\nexec poweroff -f\n"
    )
    stage2 = f"""#!/bin/sh
# guest PID 1, stage 2, on the overlay: fresh kernel filesystems, the run directory, then the
# command (or systemd, which runs it as guest.service)
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t mqueue mqueue /dev/mqueue
umount -l /.old-root && rmdir /.old-root
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup
mkdir -p {RUN_DIR}
mount -t hostfs -o {run_dir} hostfs {RUN_DIR}
{_checkout_mount()}
# kernel modules (overlay, veth, ...) from the package's tree; the host may have no kmod
mkdir -p /lib/modules && ln -sfn {MODULES}/{release} /lib/modules/{release}
[ -x /sbin/modprobe ] || ln -s /bin/busybox /sbin/modprobe
hostname guest
ip link set lo up 2>/dev/null || /bin/busybox ip link set lo up
{last}"""
    for name, text, mode in (
        ("init", stage1, 0o755),
        ("stage2", stage2, 0o755),
        ("command", command + "\n", 0o755),
        ("guest.service", unit, 0o644),
    ):
        (run_dir / name).write_text(text)
        (run_dir / name).chmod(mode)


def _checkout_mount() -> str:
    """A checkout below /tmp or /run (a CI clone, say) is hidden by the guest's fresh tmpfs
    there: show it again at its path, the host's files read-only under a tmpfs overlay."""
    if not str(CHECKOUT).startswith(("/tmp/", "/run/")):
        return ""
    layers = "/run/checkout"
    return (
        f"mkdir -p {layers}/lower {layers}/upper {layers}/work {CHECKOUT}\n"
        f"mount -r -t hostfs -o {CHECKOUT} hostfs {layers}/lower\n"
        f"mount -t overlay overlay -o lowerdir={layers}/lower,upperdir={layers}/upper,"
        f"workdir={layers}/work {CHECKOUT}"
    )
