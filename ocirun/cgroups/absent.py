"""A rootless container's missing cgroup: what runc 1.1's cgroupfs driver does when it may not
make one (no cgroupsPath, and a cgroup it cannot create or join).

The container stays in ocirun's own cgroups. Limits cannot be set, so a config that asks for
any (but device rules, which a user namespace cannot have anyway) is refused at create; pause,
ps and `kill --all` have no cgroup to work on and say so; stats are all zero.
"""

from ocirun.cgroups.entry import Entry
from ocirun.cgroups.manager import Manager
from ocirun.errors import CgroupError

_NONE = "container could not join or create cgroup (rootless, and no writable cgroup)"


class NoCgroup(Manager):
    location = ""  # what state.json keeps: open_existing("") gives a NoCgroup back

    def __init__(self, own_sources: list[tuple[str, str, str]] | None = None) -> None:
        """own_sources: ocirun's own cgroup in each hierarchy (mount_sources), at create."""
        self._own_sources = own_sources or []

    def create(self) -> None:
        pass

    def open_entry(self, sub_cgroups: dict[str, str] | None = None) -> Entry:
        if sub_cgroups is not None:
            raise CgroupError("--cgroup: the container has no cgroup of its own")
        return Entry()  # nothing to join: the processes stay where ocirun is

    def write_resources(self, resources: dict, devices: list[dict] | None) -> None:
        from ocirun.cgroups.common import asks

        for key, section in resources.items():
            if key != "devices" and asks(section):
                raise CgroupError(f"linux.resources.{key}: cannot set {key} limit: {_NONE}")

    def freeze(self) -> None:
        raise CgroupError(f"cannot toggle freezer: {_NONE}")

    thaw = freeze

    def freezer(self) -> str:
        return ""

    def pids(self) -> list[int]:
        raise CgroupError(f"cannot list the container's processes: {_NONE}")

    def kill(self) -> None:
        pass

    def stats(self) -> dict:
        from ocirun.cgroups.stats import empty_stats

        return empty_stats()

    def destroy(self) -> None:
        pass

    def oom_notifier(self):
        raise CgroupError(f"no OOM notifications: {_NONE}")

    def mount_sources(self) -> list[tuple[str, str, str]]:
        return self._own_sources
