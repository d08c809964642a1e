"""Control groups: one interface (manager.Manager), a driver per hierarchy version.

    mgr = cgroups.manager_for(config["linux"].get("cgroupsPath"), container_id)
    mgr.create(); mgr.apply(config["linux"].get("resources") or {})
    entry = mgr.open_entry(); pid, _ = entry.fork(); [child] entry.join_v1(), join_memory()
    state["cgroup"] = mgr.path  ...  cgroups.open_existing(state["cgroup"]).freeze()

Drivers: v1/ (legacy hosts, and hybrid hosts, whose cgroup2 hierarchy it drives through v2/
for the controllers bound there) and v2/ (unified hosts). The host is detected from
/proc/self/mountinfo on every call. With --systemd-cgroup, systemd/ makes the cgroup a
transient unit and drives its files through v1/ or v2/ (loaded only for such containers).

Modules: placement (where a container's cgroup goes: runc's cgroupsPath rules), manager (the
interface), entry (how forked processes get in), frozen (the paused check of `state`), detect
(the host's hierarchies), common (file access), tree (walking a cgroup), v1/, v2/ and systemd/.
"""

__all__ = ["Manager", "clean_path", "manager_for", "open_existing"]


def __getattr__(name: str):
    """The API loads on first use (PEP 562): `state`, `start` and `kill` read only
    cgroups.frozen, and load neither the placement rules, the drivers nor mountinfo."""
    if name == "Manager":
        from ocirun.cgroups.manager import Manager

        return Manager
    if name in __all__:
        from ocirun.cgroups import placement

        return getattr(placement, name)
    raise AttributeError(f"module 'ocirun.cgroups' has no attribute {name!r}")
