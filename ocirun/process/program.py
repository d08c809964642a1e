"""The container's program, for the init and `exec` alike: its environment, where it is on
the PATH, its HOME, and the execve that ends ocirun's part."""

import os

from ocirun import security
from ocirun.errors import SetupError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def environment(process: dict) -> dict[str, str]:
    """process.env as a dict; a later entry wins, as in execve's environment."""
    env = {}
    for item in process.get("env") or []:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def find_program(process: dict) -> str:
    """Look args[0] up on the container's PATH, as execvp would; a missing program is an error
    before the container's process is released."""
    name = process["args"][0]
    if "/" in name:
        candidates = [name if name.startswith("/") else os.path.join(process["cwd"], name)]
    else:
        search = environment(process).get("PATH", DEFAULT_PATH)
        candidates = [os.path.join(d or ".", name) for d in search.split(":")]
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    if "/" in name:  # Go's exec.LookPath, whose words runc passes on (and managers map)
        if os.path.lexists(candidates[0]):  # a directory, or not executable
            raise SetupError(f'exec: "{name}": permission denied')
        raise SetupError(f'exec: "{name}": stat {name}: no such file or directory')
    raise SetupError(f'exec: "{name}": executable file not found in $PATH')


def home_directory(uid: int) -> str:
    """The uid's home in the container's /etc/passwd, or "/" (what runc gives a missing HOME)."""
    try:
        with open("/etc/passwd", "rb") as f:
            for line in f:
                fields = line.decode(errors="replace").rstrip("\n").split(":")
                if len(fields) > 5 and fields[2] == str(uid) and fields[5]:
                    return fields[5]
    except OSError:
        pass
    return "/"


def execute(program: str, process: dict, linux: dict, preserve_fds: int, umask: int,
            hand_over_listener=None, before_exec=None) -> None:  # fmt: skip
    """Process security in runc's order (security.finish; hand_over_listener passes a seccomp
    listener on to its agent), then before_exec() (the init's startContainer hooks), then
    execve with process.env and a HOME from /etc/passwd when it has none."""
    env = environment(process)
    if "HOME" not in env:
        env["HOME"] = home_directory(process.get("user", {}).get("uid", 0))
    security.finish(process, linux, preserve_fds, umask, hand_over_listener)
    if before_exec is not None:
        before_exec()
    os.execve(program, process["args"], env)
