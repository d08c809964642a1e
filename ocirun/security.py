"""Process security applied by the init before exec: rlimits, user, capabilities, ..."""

import os

from ocirun import procfs
from ocirun import syscalls as sc
from ocirun.errors import ConfigError, SetupError
from ocirun.log import log

CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip
CAP_NUMBER = {name: i for i, name in enumerate(CAPABILITIES)}

RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}  # fmt: skip

SCHED_POLICIES = {
    "SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3, "SCHED_ISO": 4,
    "SCHED_IDLE": 5, "SCHED_DEADLINE": 6,
}  # fmt: skip
SCHED_FLAGS = {
    "SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02, "SCHED_FLAG_DL_OVERRUN": 0x04,
    "SCHED_FLAG_KEEP_POLICY": 0x08, "SCHED_FLAG_KEEP_PARAMS": 0x10,
    "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20, "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40,
}  # fmt: skip
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}
MEMORY_POLICY_MODES = {
    "MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3,
    "MPOL_LOCAL": 4, "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6,
}  # fmt: skip
MEMORY_POLICY_FLAGS = {
    "MPOL_F_NUMA_BALANCING": 1 << 13, "MPOL_F_RELATIVE_NODES": 1 << 14,
    "MPOL_F_STATIC_NODES": 1 << 15,
}  # fmt: skip

_LAST_CAP = None


def last_cap() -> int:
    global _LAST_CAP
    if _LAST_CAP is None:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            _LAST_CAP = int(f.read())
    return _LAST_CAP


def cap_mask(names: list[str]) -> int:
    """A bit mask of capability names; names unknown here or to this kernel are skipped."""
    mask = 0
    for name in names:
        number = CAP_NUMBER.get(name, 64)
        if number <= last_cap():
            mask |= 1 << number
    return mask


def check(process: dict, prefix: str = "process") -> None:
    """Refuse, before anything is created, values the kernel interfaces cannot take."""
    for field, names in (process.get("capabilities") or {}).items():
        for name in names:
            if name not in CAP_NUMBER:
                log.warning(f"{prefix}.capabilities.{field}: unknown capability {name}; ignoring")
    for i, rlimit in enumerate(process.get("rlimits", [])):
        if rlimit["type"] not in RLIMITS:
            raise ConfigError(
                f"config.json: {prefix}.rlimits[{i}].type: unknown {rlimit['type']!r}"
            )
    sched = process.get("scheduler")
    if sched and sched["policy"] not in SCHED_POLICIES:
        raise ConfigError(f"config.json: {prefix}.scheduler.policy: unknown {sched['policy']!r}")
    io = process.get("ioPriority")
    if io and io["class"] not in IOPRIO_CLASSES:
        raise ConfigError(f"config.json: {prefix}.ioPriority.class: unknown {io['class']!r}")


def apply_rlimits(process: dict) -> None:
    for rlimit in process.get("rlimits", []):
        try:
            sc.setrlimit(RLIMITS[rlimit["type"]], rlimit["soft"], rlimit["hard"])
        except OSError as exc:
            raise SetupError(
                f"process.rlimits: cannot set {rlimit['type']} to soft {rlimit['soft']}, "
                f"hard {rlimit['hard']}: {exc}"
            ) from None


def apply_scheduling(process: dict, linux: dict) -> None:
    """linux.personality, ioPriority, scheduler and execCPUAffinity.initial."""
    persona = linux.get("personality")
    if persona:
        if persona["domain"] not in PERSONALITY_DOMAINS:
            raise SetupError(f"linux.personality.domain: unknown {persona['domain']!r}")
        sc.personality(PERSONALITY_DOMAINS[persona["domain"]])
    io = process.get("ioPriority")
    if io:
        sc.ioprio_set(IOPRIO_CLASSES[io["class"]], io.get("priority", 0))
    sched = process.get("scheduler")
    if sched:
        flags = 0
        for flag in sched.get("flags", []):
            flags |= SCHED_FLAGS.get(flag, 0)
        sc.sched_setattr(SCHED_POLICIES[sched["policy"]], flags, sched.get("nice", 0),
                         sched.get("priority", 0), sched.get("runtime", 0),
                         sched.get("deadline", 0), sched.get("period", 0))  # fmt: skip
    affinity = (process.get("execCPUAffinity") or {}).get("initial")
    if affinity:
        os.sched_setaffinity(0, parse_cpu_list(affinity))


def apply_memory_policy(linux: dict) -> None:
    """linux.memoryPolicy, set by the init for itself: its program inherits it across execve."""
    policy = linux.get("memoryPolicy")
    if not policy:
        return
    mode = MEMORY_POLICY_MODES[policy["mode"]]
    for flag in policy.get("flags", []):
        mode |= MEMORY_POLICY_FLAGS[flag]
    try:
        sc.set_mempolicy(mode, parse_cpu_list(policy.get("nodes", "")))
    except OSError as exc:
        raise SetupError(
            f"linux.memoryPolicy: the kernel refuses {policy}: {exc.strerror}"
        ) from None


def parse_cpu_list(text: str) -> set[int]:
    """ "0-3,7" → {0, 1, 2, 3, 7}."""
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def drop_bounding_set(process: dict) -> None:
    bounding = cap_mask((process.get("capabilities") or {}).get("bounding", []))
    for cap in range(last_cap() + 1):
        if not bounding & (1 << cap):
            sc.prctl(sc.PR_CAPBSET_DROP, cap)


def switch_user(user: dict) -> None:
    """The configured uid, gids and groups, keeping the permitted capabilities for capset."""
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    sc.prctl(sc.PR_SET_KEEPCAPS, 1)
    try:
        os.setgroups(user.get("additionalGids", []))
    except PermissionError:  # a user namespace whose setgroups is "deny" (rootless, as runc)
        if user.get("additionalGids"):
            raise SetupError(
                "process.user.additionalGids: setgroups is denied in this user namespace "
                "(rootless with a single gid mapping): no additional groups can be set"
            ) from None
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    sc.prctl(sc.PR_SET_KEEPCAPS, 0)


def check_grantable(process: dict) -> None:
    """Refuse, before create returns, capabilities this process cannot hand on: runc applies
    them before then, so a set the host cannot grant fails create, not the container's start.
    capset(2) refuses permitted (and effective) beyond our own permitted set, inheritable
    beyond our bounding and inheritable sets."""
    sets = CapabilitySets(process)
    _, permitted, inheritable = sc.capget()
    bounding = 0
    for cap in range(last_cap() + 1):
        if sc.prctl(sc.PR_CAPBSET_READ, cap):
            bounding |= 1 << cap
    missing = (sets.permitted | sets.effective) & ~permitted
    missing |= sets.inheritable & ~(bounding | inheritable)
    if missing:
        names = sorted(name for name, number in CAP_NUMBER.items() if missing >> number & 1)
        raise SetupError(
            f"process.capabilities: unable to apply caps: operation not permitted "
            f"({', '.join(names)}: not held by the runtime)"
        )


class CapabilitySets:
    """The process's capability sets as masks, worked out before the last steps (reading
    cap_last_cap then would be a call the seccomp profile must allow)."""

    def __init__(self, process: dict) -> None:
        caps = process.get("capabilities") or {}
        self.effective = cap_mask(caps.get("effective", []))
        self.permitted = cap_mask(caps.get("permitted", []))
        self.inheritable = cap_mask(caps.get("inheritable", []))
        self.ambient = [CAP_NUMBER[n] for n in caps.get("ambient", []) if cap_mask([n])]

    def apply(self) -> None:
        sc.capset(self.effective, self.permitted, self.inheritable)
        sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_CLEAR_ALL)
        for cap in self.ambient:
            try:
                sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_RAISE, cap)
            except OSError:  # not in permitted and inheritable: the kernel refuses, as for runc
                pass


def finish(process: dict, linux: dict, preserve_fds: int, umask: int,
           hand_over_listener=None) -> None:  # fmt: skip
    """The last steps before execve, shared by the init and `exec`, in runc's order.

    stdio to the process's user; no_new_privs; scheduling; cwd (as root, else as the user, as
    runc does); umask; fds above 2 (+preserved) close on exec; signals Python ignores back to
    default; the bounding set; the user. Then the seccomp filter, loaded so that nothing
    follows it but execve (with no_new_privs) or the capability calls runc also makes after it
    (without: loading then needs CAP_SYS_ADMIN, kept effective until the filter is in): a
    profile never has to allow ocirun's own calls. hand_over_listener(fd) passes a
    SCMP_ACT_NOTIFY listener on to the agent and returns once it is no longer needed here.
    """
    user = process.get("user", {})
    give_stdio_to(user.get("uid", 0))
    nnp = process.get("noNewPrivileges")
    if nnp:
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
    apply_scheduling(process, linux)
    seccomp = _prepare_seccomp(linux.get("seccomp"))
    caps = CapabilitySets(process)
    cwd_pending = _chdir_as_root(process["cwd"])
    os.umask(user["umask"] if "umask" in user else umask)
    sc.close_range(3 + preserve_fds, flags=4)  # CLOSE_RANGE_CLOEXEC
    _default_signals()
    drop_bounding_set(process)
    switch_user(user)
    if cwd_pending:
        os.chdir(process["cwd"])
    _check_cwd_inside()
    if seccomp and not nnp:
        _keep_sys_admin_effective()
        _load_seccomp(seccomp, hand_over_listener)
    caps.apply()
    if seccomp and nnp:
        _load_seccomp(seccomp, hand_over_listener)


def notifies(linux: dict) -> bool:
    """Whether the filter has SCMP_ACT_NOTIFY rules, whose listener goes to an agent."""
    if not linux.get("seccomp"):
        return False
    from ocirun.seccomp import wants_listener

    return wants_listener(linux["seccomp"])


def _prepare_seccomp(seccomp: dict | None):
    if not seccomp:
        return None
    from ocirun.seccomp import Filter

    return Filter(seccomp)


def _chdir_as_root(cwd: str) -> bool:
    """chdir while still root; True when only the process's user may enter cwd (EACCES)."""
    try:
        os.chdir(cwd)
    except PermissionError:
        return True
    return False


def _check_cwd_inside() -> None:
    """A cwd reached through an fd of the host (/proc/self/fd/N) is outside our root, where
    getcwd fails: never let the program start there (CVE-2024-21626)."""
    try:
        os.getcwd()
    except FileNotFoundError:
        raise SetupError(
            "current working directory is outside of container mount namespace root -- "
            "possible container breakout detected"
        ) from None


_CAP_SYS_ADMIN = 21


def _keep_sys_admin_effective() -> None:
    """A uid change cleared the effective set; raise CAP_SYS_ADMIN again from permitted."""
    effective, permitted, inheritable = sc.capget()
    if not effective & (1 << _CAP_SYS_ADMIN) and permitted & (1 << _CAP_SYS_ADMIN):
        sc.capset(effective | 1 << _CAP_SYS_ADMIN, permitted, inheritable)


def _load_seccomp(seccomp, hand_over_listener) -> None:
    listener = seccomp.load()
    if listener >= 0:
        try:
            if hand_over_listener is None:
                raise SetupError("linux.seccomp: no way to pass the listener fd to the agent")
            hand_over_listener(listener)
        finally:
            os.close(listener)


def _default_signals() -> None:
    """Undo what Python set at start-up: SIGPIPE and SIGXFSZ ignored would survive execve."""
    import _signal

    for signum in (13, 25):  # SIGPIPE, SIGXFSZ
        _signal.signal(signum, _signal.SIG_DFL)


def give_stdio_to(uid: int) -> None:
    """Make the process's user own its stdio (not /dev/null), so that it can reopen its
    terminal; errors that mean "not ours to change" are skipped, as runc does."""
    null = os.makedev(1, 3)
    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
            if st.st_uid != uid and not (st.st_rdev == null and st.st_mode & 0o020000):
                os.fchown(fd, uid, -1)
        except OSError as exc:
            if exc.errno not in (1, 9, 22, 30):  # EPERM, EBADF, EINVAL, EROFS
                raise


def write_oom_score_adj(process: dict) -> None:
    if "oomScoreAdj" in process:
        procfs.write("self/oom_score_adj", str(process["oomScoreAdj"]))
