"""The process `exec` runs: a process.json (--process), or the container's own process with
the command line's changes, as runc builds it."""

from ocirun.errors import UsageError


def load_process(path: str) -> dict:
    """Read and validate a process.json (`--process`)."""
    from ocirun import jsonio
    from ocirun.errors import ConfigError
    from ocirun.schema import validate_process

    try:
        process = jsonio.load_file(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"process.json: cannot read {path}: {exc}") from None
    if not isinstance(process, dict):
        raise ConfigError(f"process.json: {path} does not hold a JSON object")
    validate_process(process)
    if not process.get("args"):
        raise ConfigError("process.json: args: must name at least the program to run")
    return process


def process_from_flags(base: dict, opts: dict, command: list[str]) -> dict:
    """The container's process with the command line's changes, as runc builds it."""
    if not command:
        raise UsageError("exec: expects a command to run (or --process)")
    process = dict(base, args=command, terminal=opts["tty"])  # changed parts are copied below
    process.pop("consoleSize", None)
    if opts["cwd"]:
        process["cwd"] = opts["cwd"]
    process["env"] = list(process.get("env") or []) + opts["env"]
    user = dict(process.get("user") or {"uid": 0, "gid": 0})
    if opts["user"]:
        user = parse_user(opts["user"], user)
    gids = [_number(g, "--additional-gids") for g in opts["additional_gids"]]
    if gids:
        user["additionalGids"] = list(user.get("additionalGids", [])) + gids
    process["user"] = user
    if opts["no_new_privs"]:
        process["noNewPrivileges"] = True
    if opts["cap"]:
        caps = dict(process.get("capabilities") or {})
        for field in ("bounding", "effective", "permitted", "inheritable", "ambient"):
            caps[field] = list(caps.get(field, [])) + opts["cap"]
        process["capabilities"] = caps
    return process


def parse_user(text: str, current: dict) -> dict:
    """ "uid" or "uid:gid" (numbers, as runc takes them) over the config's user."""
    uid, _, gid = text.partition(":")
    user = dict(current, uid=_number(uid, "--user"))
    if gid:
        user["gid"] = _number(gid, "--user")
    return user


def _number(text: str, flag: str) -> int:
    if not text.isdigit():
        raise UsageError(f"invalid value {text!r} for {flag}: expects a number")
    return int(text)


def sub_cgroups(values: list[str]) -> dict[str, str] | None:
    """--cgroup values as {controller: sub-path}; "" is the sub-path of every controller.

    runc's forms: one PATH alone, or any number of CONTROLLER[,CONTROLLER...]:PATH.
    """
    if not values:
        return None
    paths = {}
    for value in values:
        controllers, colon, path = value.rpartition(":") if ":" in value else ("", "", value)
        if ":" in controllers:
            raise UsageError(f"invalid --cgroup argument: {value}")
        if not colon:
            if len(values) != 1:
                raise UsageError(f"invalid --cgroup argument: {value} (missing CONTROLLER: prefix)")
            paths[""] = path
            continue
        for controller in controllers.split(","):
            paths[controller] = path
    return paths
