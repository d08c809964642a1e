"""An unprivileged user of a test's own: made with subordinate id ranges and an XDG runtime
dir, removed with everything it owns afterwards; commands run as it (setpriv), never as root."""

import os
import pwd
import subprocess
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class User:
    """A user made for one test module, with subordinate id ranges and an XDG runtime dir."""

    def __init__(self) -> None:
        self.name = "ocrl" + uuid.uuid4().hex[:8]
        self.uid = -1
        self.xdg = self.home = ""

    def make(self) -> None:
        """The user, its ranges, its runtime dir and a home holding a busybox rootfs."""
        subprocess.run(["useradd", "-M", "-s", "/bin/sh", self.name], check=True)
        entry = pwd.getpwnam(self.name)
        self.uid, self.gid = entry.pw_uid, entry.pw_gid
        self.subuid = _range("/etc/subuid", self.name)
        self.subgid = _range("/etc/subgid", self.name)
        self.xdg = f"/run/user/{self.uid}"
        os.makedirs(self.xdg, 0o700)
        os.chown(self.xdg, self.uid, self.gid)
        self.home = tempfile.mkdtemp(prefix=f"{self.name}-")
        os.chmod(self.home, 0o755)
        rootfs = os.path.join(self.home, "rootfs")
        subprocess.run([str(REPO / "bundles" / "make-rootfs"), rootfs], check=True,
                       capture_output=True)  # fmt: skip
        subprocess.run(["chown", "-R", f"{self.uid}:{self.gid}", self.home], check=True)

    def run(self, *argv: str, timeout: float = 30, env: dict | None = None, cgroup: str = ""):
        """argv as the user (setpriv: its uid, gid and groups), with its XDG_RUNTIME_DIR;
        cgroup: a cgroup2 directory root moves the process into first (a delegation)."""
        environment = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": self.home,
                       "USER": self.name, "XDG_RUNTIME_DIR": self.xdg, **(env or {})}  # fmt: skip
        enter = ["sh", "-c", 'echo $$ >"$0/cgroup.procs" && exec "$@"', cgroup] if cgroup else []
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.run(
                [*enter, "setpriv", f"--reuid={self.uid}", f"--regid={self.gid}",
                 "--init-groups", "--", *argv],
                stdout=out, stderr=err, env=environment, cwd=self.home, timeout=timeout,
            )  # fmt: skip
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(
                proc.args, proc.returncode, out.read().decode(), err.read().decode()
            )

    def remove(self) -> None:
        """Kill what the user still runs, then remove its files and the user itself."""
        if self.uid >= 0:
            subprocess.run(["pkill", "-9", "-U", str(self.uid)], check=False)
        for path in (self.xdg, self.home):
            if path and os.path.isdir(path):
                subprocess.run(["rm", "-rf", "--one-file-system", path], check=False)
        subprocess.run(["userdel", self.name], check=False, capture_output=True)


def _range(path: str, name: str) -> tuple[int, int]:
    with open(path) as f:
        for line in f:
            owner, start, count = line.strip().split(":")
            if owner == name:
                return int(start), int(count)
    raise RuntimeError(f"useradd gave {name} no range in {path}")
