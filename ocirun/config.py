"""Loading config.json and the spec's MUSTs that the JSON schema cannot express."""

import os

from ocirun import jsonio
from ocirun.errors import ConfigError
from ocirun.log import log


def load(bundle: str) -> dict:
    """Read and parse <bundle>/config.json."""
    path = os.path.join(bundle, "config.json")
    try:
        return jsonio.load_object(path)
    except FileNotFoundError:
        raise ConfigError(f"config.json: no such file in bundle {bundle}") from None
    except OSError as exc:
        raise ConfigError(f"config.json: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"config.json: {exc}") from None


class Config:
    """A view over config.json's dict: the parts that several steps read, looked up once."""

    def __init__(self, data: dict) -> None:
        self.data = data
        self.linux: dict = data.get("linux") or {}
        # linux.namespaces as {type: path, or None for a new one}
        self.namespaces = {ns["type"]: ns.get("path") for ns in self.linux.get("namespaces", [])}

    @property
    def process(self) -> dict:
        return self.data["process"]

    @property
    def mounts(self) -> list[dict]:
        return self.data.get("mounts", [])

    @property
    def annotations(self) -> dict:
        return self.data.get("annotations") or {}

    def new_namespace(self, ns_type: str) -> bool:
        """Whether the container gets a new namespace of this type (not one joined by path)."""
        return ns_type in self.namespaces and self.namespaces[ns_type] is None

    def wants_cgroup_mount(self) -> bool:
        return any(m.get("type") in ("cgroup", "cgroup2") for m in self.mounts)


def rootfs_path(config: dict, bundle: str) -> str:
    return os.path.normpath(os.path.join(bundle, config["root"]["path"]))


def check(config: dict, bundle: str) -> None:
    """Schema validation, then the spec's other MUSTs; ConfigError names the field."""
    from ocirun.schema import validate_config

    validate_config(config)
    _check_version(config.get("ociVersion", ""))
    _check_root(config, bundle)
    _check_process(config.get("process"))
    _check_mounts(config)
    _check_linux(Config(config))
    _check_hooks(config.get("hooks") or {})
    _check_annotations(config.get("annotations") or {})


def _check_version(version: str) -> None:
    major = version.split(".", 1)[0]
    if major != "1":
        raise ConfigError(f"config.json: ociVersion: {version!r} is not a 1.x version")


def _check_root(config: dict, bundle: str) -> None:
    if "root" not in config:
        raise ConfigError("config.json: root: required on Linux")
    path = rootfs_path(config, bundle)
    if not os.path.isdir(path):
        raise ConfigError(f"config.json: root.path: {path} is not a directory")


def _check_process(process: dict | None) -> None:
    if process is None:
        raise ConfigError("config.json: process: required to create a container")
    if not process.get("args"):
        raise ConfigError("config.json: process.args: must name at least the program to run")
    if not process.get("cwd", "").startswith("/"):
        raise ConfigError(f"config.json: process.cwd: {process.get('cwd')!r} is not absolute")


def _check_mounts(config: dict) -> None:
    for i, mount in enumerate(config.get("mounts", [])):
        if not mount["destination"].startswith("/"):
            log.warning(
                f"mounts[{i}].destination {mount['destination']!r} is relative (deprecated); "
                "taking it as relative to /"
            )
            mount["destination"] = "/" + mount["destination"]


def _check_hooks(hooks: dict) -> None:
    for kind, entries in hooks.items():
        for i, hook in enumerate(entries or []):
            if not hook["path"].startswith("/"):
                raise ConfigError(
                    f"config.json: hooks.{kind}[{i}].path: {hook['path']!r} is not absolute"
                )


def _check_annotations(annotations: dict) -> None:
    if "" in annotations:
        raise ConfigError("config.json: annotations: a key must not be empty")


_IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")  # fmt: skip


def _check_sysctl(key: str, ns: dict) -> None:
    """Only keys of a namespace the container has a new one of (as runc): never the host's."""
    if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
        needs = "ipc"
    elif key.startswith("net."):
        needs = "network"
    elif key in ("kernel.hostname", "kernel.domainname"):
        needs = "uts"
    else:
        raise ConfigError(f"config.json: linux.sysctl: {key} is not in a separate kernel namespace")
    if needs not in ns:
        raise ConfigError(
            f"config.json: linux.sysctl: {key} needs the container's own {needs} namespace"
        )


def _check_net_devices(devices: dict, ns: dict) -> None:
    """A new network namespace to move them into; names the kernel can take (as runc)."""
    if "network" not in ns or ns["network"] is not None:
        raise ConfigError("config.json: linux.netDevices: needs a new network namespace")
    for name, entry in devices.items():
        for value in (name, entry.get("name", name)):
            if not _valid_interface_name(value):
                raise ConfigError(
                    f"config.json: linux.netDevices.{name}: {value!r} is not a valid device name"
                )


def _valid_interface_name(name: str) -> bool:
    """As the kernel's dev_valid_name (1 to 15 bytes, not . or .., no /, : or whitespace), and
    a `%` only in one `%d` (the template the kernel completes)."""
    if not 0 < len(name.encode()) < 16 or name in (".", "..") or "%" in name.replace("%d", "", 1):
        return False
    return not any(c in "/:" or c.isspace() for c in name)


def _check_linux(spec: Config) -> None:
    config, linux, ns = spec.data, spec.linux, spec.namespaces
    seen = set()
    for i, entry in enumerate(linux.get("namespaces", [])):
        if entry["type"] in seen:
            raise ConfigError(f"config.json: linux.namespaces[{i}]: duplicate {entry['type']!r}")
        seen.add(entry["type"])
    has_mappings = bool(linux.get("uidMappings") or linux.get("gidMappings"))
    if spec.new_namespace("user"):
        if not linux.get("uidMappings") or not linux.get("gidMappings"):
            raise ConfigError(
                "config.json: linux.uidMappings/gidMappings: required with a new user namespace"
            )
    elif has_mappings and "user" not in ns:
        raise ConfigError("config.json: linux.uidMappings: given without a user namespace")
    for field in ("hostname", "domainname"):
        if config.get(field) and "uts" not in ns:
            raise ConfigError(f"config.json: {field}: needs a new uts namespace")
    if linux.get("timeOffsets") and ns.get("time", "") is not None:
        raise ConfigError("config.json: linux.timeOffsets: needs a new time namespace")
    for i, entry in enumerate(linux.get("namespaces", [])):
        if "path" in entry and not entry["path"].startswith("/"):
            raise ConfigError(
                f"config.json: linux.namespaces[{i}].path: {entry['path']!r} is not absolute"
            )
    for key in linux.get("sysctl") or {}:
        _check_sysctl(key, ns)
    if linux.get("netDevices"):
        _check_net_devices(linux["netDevices"], ns)
    if config.get("process", {}).get("apparmorProfile") and not os.path.exists(
        "/sys/kernel/security/apparmor"
    ):
        raise ConfigError(
            "config.json: process.apparmorProfile: AppArmor is not enabled on this host"
        )
    for field, value in (("process.selinuxLabel", config.get("process", {}).get("selinuxLabel")),
                         ("linux.mountLabel", linux.get("mountLabel"))):  # fmt: skip
        if value and not os.path.exists("/sys/fs/selinux"):
            raise ConfigError(f"config.json: {field}: SELinux is not enabled on this host")
    if linux.get("seccomp"):
        from ocirun import seccomp

        seccomp.check(linux["seccomp"])
    if linux.get("intelRdt"):
        raise ConfigError("config.json: linux.intelRdt: not supported by ocirun")
