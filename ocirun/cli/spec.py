"""Write a default config.json (runc's template, for a busybox-like rootfs) into the bundle."""

from ocirun.cli.options import opt
from ocirun.spec_template import default_spec, to_rootless

USAGE = "spec [--bundle DIR]"
OPTIONS = [
    opt("--bundle", "-b", default=".", help="directory to write config.json to"),
    opt("--rootless", kind=bool, help="a config for an unprivileged user (see to_rootless)"),
]


def run(ctx, opts: dict, args: list[str]) -> int:
    import os

    from ocirun import jsonio
    from ocirun.errors import UsageError

    spec = default_spec()
    if opts["rootless"]:
        to_rootless(spec)
    path = os.path.join(opts["bundle"], "config.json")
    if os.path.exists(path):
        raise UsageError(f"File {path} exists. Remove it first")
    with open(path, "w") as f:
        f.write(jsonio.dumps_pretty(spec) + "\n")
    return 0
