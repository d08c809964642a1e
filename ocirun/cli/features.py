"""Print what this build of ocirun supports, as the spec's features document (JSON)."""

USAGE = "features"
OPTIONS = []


def features() -> dict:
    from ocirun import OCI_VERSION
    from ocirun.mountopts import FLAGS as MOUNT_FLAGS
    from ocirun.mountopts import PROPAGATION, RECURSIVE
    from ocirun.namespaces import NAMESPACE_FLAGS
    from ocirun.seccomp import ACTIONS as SECCOMP_ACTIONS
    from ocirun.seccomp import ARCHITECTURES, FLAGS, OPERATORS
    from ocirun.security import CAPABILITIES, MEMORY_POLICY_FLAGS, MEMORY_POLICY_MODES

    mount_options = sorted(
        set(MOUNT_FLAGS) | set(PROPAGATION) | set(RECURSIVE) | {"idmap", "ridmap", "tmpcopyup"}
    )
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop",
        ],  # fmt: skip
        "mountOptions": mount_options,
        "linux": {
            "namespaces": sorted(NAMESPACE_FLAGS),
            "capabilities": list(CAPABILITIES),
            "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": False},
            "seccomp": {
                "enabled": True,
                "actions": sorted(set(SECCOMP_ACTIONS) - {"SCMP_ACT_NOTIFY"}),
                "operators": sorted(OPERATORS),
                "archs": list(ARCHITECTURES),
                "supportedFlags": sorted(FLAGS),
                "knownFlags": sorted(FLAGS),
            },
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": True}},
            "netDevices": {"enabled": True},
            "memoryPolicy": {
                "modes": list(MEMORY_POLICY_MODES),
                "flags": list(MEMORY_POLICY_FLAGS),
            },
        },
        "annotations": {"org.opencontainers.runtime-spec.features.ocirun.version": "0.1.0"},
    }


def run(ctx, opts: dict, args: list[str]) -> int:
    import sys

    from ocirun import jsonio

    sys.stdout.write(jsonio.dumps_pretty(features()) + "\n")
    return 0
