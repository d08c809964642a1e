"""The one interface both drivers implement (v1/, v2/): a container's cgroup."""

import os

from ocirun.cgroups.common import warn
from ocirun.cgroups.entry import Entry
from ocirun.errors import CgroupError


def sub_cgroup(directory: str, path: str) -> str:
    """directory/path, refused unless it is directory or below it."""
    joined = os.path.normpath(f"{directory}/{path}")
    if joined != directory and not joined.startswith(directory + "/"):
        raise CgroupError(f"--cgroup: {path} is not a sub cgroup path")
    return joined


class Manager:
    """One container's cgroup, in every hierarchy the host has. See the package docstring."""

    location: str  # where the cgroup is: mgr.path without the ";parents=" part
    parents = 0  # levels above the cgroup that create() made, for destroy() to remove again
    rootless = False  # made for a rootless container (see placement): device rules may fail

    @property
    def path(self) -> str:
        """What open_existing() takes back: the location, and the parents create() made."""
        return f"{self.location};parents={self.parents}" if self.parents else self.location

    def create(self) -> None:
        """mkdir the cgroup (and its parents) in every hierarchy; idempotent."""
        raise NotImplementedError

    def warn_if_not_empty(self) -> None:
        """For a cgroup that was there before create: processes in it (another container's?)
        share its limits and would be killed with it. runc warns, and so do we."""
        try:
            pids = self.pids()
        except CgroupError:
            return
        if pids:
            warn(f"container's cgroup is not empty: {len(pids)} process(es) found")

    def open_entry(self, sub_cgroups: dict[str, str] | None = None) -> Entry:
        """The doors through which a process about to be forked joins the cgroup (see Entry);
        with sub_cgroups (`exec --cgroup`: {controller or "": path}), sub-cgroups of it."""
        raise NotImplementedError

    def apply(self, resources: dict) -> None:
        """Write linux.resources at create, runc's default device rules appended."""
        from ocirun.cgroups.devices import DEFAULT_RULES

        rules = [*(resources.get("devices") or []), *DEFAULT_RULES]
        if not self.rootless:
            self.write_resources(resources, rules)
            return
        self.write_resources(resources, None)
        try:  # as runc: device rules need privileges a user lacks, and its user namespace
            self.write_resources({}, rules)  # already keeps it from making device nodes
        except CgroupError as exc:  # (silently, as runc: only --debug tells)
            from ocirun.log import log

            log.debug(f"rootless: device rules not applied: {exc}")

    def update(self, resources: dict) -> None:
        """Change limits live (`ocirun update`); device rules stay as they are, as in runc."""
        if "devices" in resources:
            warn("update: device rules are not updated (as in runc)")
        self.write_resources(resources, None)

    def write_resources(self, resources: dict, devices: list[dict] | None) -> None:
        """What apply and update share: devices None leaves the device rules alone."""
        raise NotImplementedError

    def delegate(self, uid: int, gid: int) -> None:
        """Make the cgroup2 cgroup the container root's (see delegation.py); v1: nothing."""

    def freeze(self) -> None:
        """Freeze every process and return once the kernel reports the cgroup frozen."""
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def freezer(self) -> str:
        """Where the cgroup's freeze state is, as state.json keeps it (see cgroups.frozen)."""
        raise NotImplementedError

    def is_frozen(self) -> bool:
        from ocirun.cgroups.frozen import is_frozen

        return is_frozen(self.freezer())

    def pids(self) -> list[int]:
        """Every process in the cgroup and its sub-cgroups, sorted."""
        raise NotImplementedError

    def kill(self) -> None:
        """SIGKILL every process in the cgroup (cgroup.kill where the kernel has it)."""
        raise NotImplementedError

    def stats(self) -> dict:
        """The "data" object of runc's `events --stats` (runc 1.1 field names)."""
        raise NotImplementedError

    def destroy(self) -> None:
        """rmdir the cgroup in every hierarchy, deepest first, then the parents create() made
        while they are empty; missing directories are fine."""
        raise NotImplementedError

    def oom_notifier(self) -> "OomNotifier":
        """Something to poll() for the container's OOM kills."""
        raise NotImplementedError

    def mount_sources(self) -> list[tuple[str, str, str]]:
        """(subdirectory under the container's /sys/fs/cgroup, host directory, fstype)."""
        raise NotImplementedError


class OomNotifier:
    """poll() its fileno() for poll_events, then call read(): the number of OOM kills since
    the last read, or None once the cgroup is gone (or, on v2, has no process left)."""

    poll_events: int

    def fileno(self) -> int:
        raise NotImplementedError

    def read(self) -> int | None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError
