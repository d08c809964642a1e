"""The one exception hierarchy of ocirun; the CLI turns each into a log line and an exit code."""


class OcirunError(Exception):
    """Base of every error ocirun reports to its caller."""

    exit_code = 1


class UsageError(OcirunError):
    """Bad command line: unknown flag, missing argument."""


class ConfigError(OcirunError):
    """config.json (or a process.json) is invalid or asks for something impossible."""


class ContainerNotFound(OcirunError):
    """No container with that id under the state root."""


class ContainerExists(OcirunError):
    """A container with that id already exists."""


class CorruptState(OcirunError):
    """A container's state.json cannot be read or lacks what ocirun wrote into it."""


class InvalidState(OcirunError):
    """The operation is not allowed in the container's current status."""


class CgroupError(OcirunError):
    """A cgroup could not be created, written or removed."""


class SetupError(OcirunError):
    """The container environment could not be set up (namespaces, mounts, devices, security)."""


class HookError(OcirunError):
    """A lifecycle hook failed or timed out."""
