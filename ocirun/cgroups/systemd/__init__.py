"""The systemd cgroup driver (`--systemd-cgroup`): the container's cgroup is a transient unit
that systemd makes and removes, asked over D-Bus (dbus.py), as runc 1.1's systemd driver does.

    create: StartTransientUnit(prefix-name.scope, Slice=, Delegate=yes, PIDs=, resources as
            properties, org.systemd.property.* annotations); then the cgroup files (v2/ or
            v1/ driver on the unit's cgroup) for everything, as runc's fs backing does
    update: SetUnitProperties, then the files
    delete: StopUnit, waiting for its job; ResetFailedUnit; then what is left of the cgroup

A scope needs a process to start with. runc starts it with its init, which systemd then moves
(the kernel makes that move wait for an RCU grace period). Here a placeholder, a forked child
that only waits, is what systemd moves; the init is then born in the scope's cgroup2 cgroup
(clone3 CLONE_INTO_CGROUP) and joins its v1 cgroups by itself (cgroups.Entry) as with the
cgroupfs driver: one move either way, and the init is charged to, and limited by, the scope
from its first page. The placeholder is killed once the init is in (Entry.close).

Everything else (freeze, kill, pids, stats, events) is the v2/v1 driver's on the unit's
cgroup. mgr.path is that driver's path with ";unit=NAME" added; open_existing() rebuilds the
manager from it, so only containers made with --systemd-cgroup load this package.
"""

import os

from ocirun.cgroups.entry import Entry
from ocirun.cgroups.manager import Manager, OomNotifier
from ocirun.cgroups.systemd import properties, units
from ocirun.errors import CgroupError


def manager_for(cgroups_path: str | None, container_id: str, annotations: dict) -> Manager:
    """The manager of a new container's unit; reads mountinfo, asks systemd nothing yet."""
    from ocirun.cgroups import detect, placement

    slice_, unit = units.parse(cgroups_path, container_id)
    location = (
        units.expand_slice(unit) if unit.endswith(".slice") else units.cgroup_path(slice_, unit)
    )
    extra = properties.annotation_properties(annotations)  # bad annotations: refused now
    inner = placement.manager_for(location, container_id)
    manager = SystemdManager(inner, unit, detect.host().mode == "unified", slice_, extra)
    manager.started = False
    manager.name = cgroups_path.split(":")[2] if cgroups_path else container_id
    return manager


class SystemdManager(Manager):
    """A unit of systemd's, over the v2 (unified host) or v1 driver of its cgroup."""

    def __init__(self, inner: Manager, unit: str, v2: bool, slice_: str = "",
                 extra: list[tuple] | None = None) -> None:  # fmt: skip
        self.inner = inner
        self.unit = unit
        self.v2 = v2
        self.slice = slice_  # known at create only: update and delete need just the unit
        self.extra = extra or []
        self.placeholder = 0  # the pid holding the scope until the init is in it
        self.started = True  # False for a new container until StartTransientUnit
        self._bus = None
        self._version = 0
        self.name = ""  # the container's name in cgroupsPath, for the unit's Description

    @property
    def location(self) -> str:
        return self.inner.location

    @property
    def path(self) -> str:
        return f"{self.inner.path};unit={self.unit}"

    def _connection(self):
        if self._bus is None:
            from ocirun.cgroups.systemd.dbus import Connection

            self._bus = Connection()
        return self._bus

    def _systemd_version(self) -> int:
        """The number at the start of the manager's Version property ("252.38-1~deb12u1")."""
        if not self._version:
            from ocirun.cgroups.systemd.dbus import MANAGER, MANAGER_PATH, SYSTEMD

            (variant,) = self._connection().call(
                SYSTEMD, MANAGER_PATH, "org.freedesktop.DBus.Properties", "Get", "ss",
                [MANAGER, "Version"],
            )  # fmt: skip
            text = str(variant[1]).lstrip("v")
            digits = len(text) - len(text.lstrip("0123456789"))
            self._version = int(text[:digits] or 0)
        return self._version

    def create(self) -> None:
        """Nothing yet: the unit is started by apply(), with its resources as properties."""

    def apply(self, resources: dict) -> None:
        from ocirun.cgroups.devices import DEFAULT_RULES

        devices = [*(resources.get("devices") or []), *DEFAULT_RULES]
        with_devices = {**resources, "devices": devices}
        self.placeholder = _fork_placeholder()  # (before connecting: it keeps no socket)
        try:
            props = properties.unit_properties(
                self.slice, self.unit, self.placeholder, self.v2, self.name
            )
            props += properties.resource_properties(with_devices, self.v2, self._systemd_version)
            props += self.extra
            self._start(self._connection(), props)
            self.inner.create()
            self.inner.write_resources(resources, devices)
        except BaseException:
            self._end_placeholder()
            raise
        finally:
            self._disconnect()  # the init, forked next, must not hold systemd's connection

    def _disconnect(self) -> None:
        """Close the connection: systemd sends every signal to each private connection, and
        one that a process keeps open without reading fills up on systemd's side."""
        if self._bus is not None:
            self._bus.close()
            self._bus = None

    def _start(self, bus, props: list[tuple]) -> None:
        from ocirun.cgroups.systemd.dbus import DBusError

        try:
            (job,) = bus.manager("StartTransientUnit", "ssa(sv)a(sa(sv))",
                                 [self.unit, "replace", props, []])  # fmt: skip
        except DBusError as e:
            if e.name == "org.freedesktop.systemd1.UnitExists":
                raise CgroupError(f"systemd unit {self.unit} exists already") from None
            raise
        self.started = True  # (a failed job may leave a failed unit for destroy to reset)
        result = bus.wait_job(job)
        if result != "done":
            self._reset_failed(bus)
            raise CgroupError(f"systemd could not start unit {self.unit}: job {result}")

    def update(self, resources: dict) -> None:
        """SetUnitProperties (runtime), then the files; device rules stay (Manager.update)."""
        without_devices = {k: v for k, v in resources.items() if k != "devices"}
        props = properties.resource_properties(without_devices, self.v2, self._systemd_version)
        if props:
            self._connection().manager("SetUnitProperties", "sba(sv)", [self.unit, True, props])
        self.inner.update(resources)

    def write_resources(self, resources: dict, devices: list[dict] | None) -> None:
        self.inner.write_resources(resources, devices)

    def open_entry(self, sub_cgroups: dict[str, str] | None = None) -> Entry:
        entry = self.inner.open_entry(sub_cgroups)
        if not self.placeholder:
            return entry
        scope_entry = _ScopeEntry(self)
        scope_entry.__dict__.update(entry.__dict__)
        return scope_entry

    def _end_placeholder(self) -> None:
        if self.placeholder:
            try:
                os.kill(self.placeholder, 9)
            except ProcessLookupError:  # (a zombie is still there to reap)
                pass
            os.waitpid(self.placeholder, 0)
            self.placeholder = 0

    def destroy(self) -> None:
        """Stop the unit and wait for systemd to be done with it, then remove what is left of
        the cgroup (sub-cgroups, v1 hierarchies systemd does not manage)."""
        from ocirun.cgroups.systemd.dbus import DBusError

        self._end_placeholder()
        if not self.started:  # a create that failed before systemd heard of the unit
            self.inner.destroy()
            return
        bus = self._connection()
        try:
            (job,) = bus.manager("StopUnit", "ss", [self.unit, "replace"])
        except DBusError as e:
            if e.name not in ("org.freedesktop.systemd1.NoSuchUnit",
                              "org.freedesktop.DBus.Error.UnknownObject"):  # fmt: skip
                raise
        else:
            result = bus.wait_job(job)
            if result != "done":
                from ocirun.cgroups.common import warn

                warn(f"systemd: stopping unit {self.unit}: job {result}")
        self._reset_failed(bus)
        self.inner.destroy()

    def _reset_failed(self, bus) -> None:
        from ocirun.cgroups.systemd.dbus import DBusError

        try:
            bus.manager("ResetFailedUnit", "s", [self.unit])
        except DBusError:
            pass  # not failed, or gone

    def freeze(self) -> None:
        self.inner.freeze()

    def thaw(self) -> None:
        self.inner.thaw()

    def freezer(self) -> str:
        return self.inner.freezer()

    def pids(self) -> list[int]:
        return self.inner.pids()

    def kill(self) -> None:
        self.inner.kill()

    def stats(self) -> dict:
        return self.inner.stats()

    def oom_notifier(self) -> OomNotifier:
        return self.inner.oom_notifier()

    def mount_sources(self) -> list[tuple[str, str, str]]:
        return self.inner.mount_sources()


class _ScopeEntry(Entry):
    """The cgroup driver's Entry; closing it in create (the init is in the scope by then) ends
    the placeholder. (The init closes its copy too: it leaves the placeholder alone.)"""

    def __init__(self, manager: SystemdManager) -> None:
        super().__init__()
        self._manager = manager
        self._parent = os.getpid()

    def close(self) -> None:
        super().close()
        if os.getpid() == self._parent:
            self._manager._end_placeholder()


def _fork_placeholder() -> int:
    """A child that only waits: for SIGKILL, which it also gets when its parent dies first
    (PR_SET_PDEATHSIG), so that a crashed create leaves no process holding the scope."""
    from ocirun import syscalls as sc

    pid = os.fork()
    if pid == 0:
        try:
            sc.prctl(PR_SET_PDEATHSIG, 9)
            read_end, _ = os.pipe()  # never written: a read that blocks until killed
            os.read(read_end, 1)
        finally:
            os._exit(0)
    return pid


PR_SET_PDEATHSIG = 1
