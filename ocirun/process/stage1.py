"""Forking the init (process/init.py), through stage 1 where one clone3 cannot make it.

    ocirun create ──fork──> stage 1: idmapped mount trees, a new user namespace (the parent
                  │         writes its maps), namespaces joined by path, unshare the rest
                  │            └──fork──> the init, PID 1 of a new pid namespace; stage 1 exits
                  └──clone3──> the init, in all its namespaces at once (no stage 1)

Where every namespace is new and none is a user or time namespace (runc's default config,
containerd's without a network path), one clone3 makes the init in all of them and stage 1 is
skipped: one process less to fork, fault in and wait for. Either way no ocirun process waits
for the init: when `ocirun create` (or stage 1) exits, the init is re-parented to the caller's
subreaper (containerd's shim, conmon). The messages are in process/protocol.py.
"""

import gc
import os

from ocirun import namespaces, security
from ocirun import syscalls as sc
from ocirun.log import log
from ocirun.namespaces import NAMESPACE_FLAGS
from ocirun.process import init
from ocirun.process.init import Plan
from ocirun.process.protocol import PID, USERNS, Channel, run_child
from ocirun.state import EXEC_FIFO


def fork_init(plan: Plan, channel: Channel) -> tuple[int, int]:
    """Fork the init; return (its pid, 0), or (0, stage 1's pid) where stage 1 forks it and
    reports its pid. Runs in the parent, which keeps its own namespaces either way."""
    _give_exec_fifo_to_container(plan)
    log.debug("nsexec container setup: forking the init")
    gc.freeze()  # keep the children from dirtying (and being charged for) the parent's objects
    if _can_fork_directly(plan):
        flags = namespaces.unshare_flags(plan.namespaces, exclude=("cgroup",))
        try:
            pid = sc.fork_into(plan.cgroup_entry.cgroup2_fd, flags)
        except OSError:  # no clone3 here: the long way, through stage 1
            pass
        else:
            if pid:
                return pid, 0
            _in_child(plan, channel, init.run, plan, channel, False)
    pid = os.fork()
    if pid:
        return 0, pid
    _in_child(plan, channel, stage1, plan, channel)


def _can_fork_directly(plan: Plan) -> bool:
    """Whether one clone3 can make the init with all its namespaces: every namespace is new,
    none of them a user or time namespace (their maps and offsets must be written between
    creating them and entering them), and no mount wants an idmap (made by stage 1)."""
    ns = plan.namespaces
    return (all(path is None for path in ns.values()) and "user" not in ns
            and "time" not in ns and not _wants_idmap(plan.spec.mounts))  # fmt: skip


def _in_child(plan: Plan, channel: Channel, function, *args) -> None:
    gc.disable()
    if plan.lock_fd >= 0:
        os.close(plan.lock_fd)
    run_child(channel.as_child(), function, *args)


def _give_exec_fifo_to_container(plan: Plan) -> None:
    """The init may run as a uid of a user namespace: let it write the fifo (as runc does)."""
    os.chmod(EXEC_FIFO, 0o622, dir_fd=plan.state_dir_fd)
    if "user" in plan.namespaces:
        uid = namespaces.host_id(plan.linux.get("uidMappings", []), 0)
        gid = namespaces.host_id(plan.linux.get("gidMappings", []), 0)
        try:
            os.chown(EXEC_FIFO, uid, gid, dir_fd=plan.state_dir_fd)
        except PermissionError:  # rootless, root mapped to a subordinate id: 0622 suffices
            pass


def stage1(plan: Plan, channel: Channel) -> None:
    """Set up the namespaces the init cannot be born in, fork it, report its pid, exit."""
    ns = plan.namespaces
    # as the host's root: in a user namespace /proc/self/oom_score_adj is not ours to write
    security.write_oom_score_adj(plan.process)
    if _wants_idmap(plan.spec.mounts) or "user" in ns:
        from ocirun import idmapped_mounts

        # still the host's root here: bind sources a user namespace's root could not reach
        plan.idmap_trees = idmapped_mounts.prepare(plan.spec, plan.bundle)
    fds = namespaces.open_paths(ns)
    namespaces.join(fds, ns, only=("user",))
    if plan.spec.new_namespace("user"):
        sc.unshare(NAMESPACE_FLAGS["user"])
        channel.send(USERNS)
        channel.wait_go()  # the parent has written our uid_map and gid_map
    namespaces.join(fds, ns, only=tuple(fds))
    sc.unshare(namespaces.unshare_flags(ns, exclude=("user", "cgroup", "pid")))
    if plan.linux.get("timeOffsets"):
        # before the uid change below: that makes us non-dumpable, and /proc/self/* then
        # belongs to the host's root, whose file we could not open any more
        namespaces.write_time_offsets(plan.linux["timeOffsets"])
    if "user" in ns:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    # a new pid namespace comes with the fork: a failed clone3 into a pid namespace unshared
    # before would leave it unable to have an init (every later fork there fails, ENOMEM)
    new_pid_ns = NAMESPACE_FLAGS["pid"] if plan.spec.new_namespace("pid") else 0
    pid, joined = plan.cgroup_entry.fork(new_pid_ns)
    if pid == 0:
        run_child(channel, init.run, plan, channel, True)
    channel.send(f"{PID} {pid} {'joined' if joined else 'move'}")


def _wants_idmap(mounts: list[dict]) -> bool:
    """Whether a mount asks for an idmap (without parsing every mount's options)."""
    for entry in mounts:
        options = entry.get("options", ())
        if entry.get("uidMappings") or entry.get("gidMappings"):
            return True
        if "idmap" in options or "ridmap" in options:
            return True
    return False
