"""Create a container: everything but running the program, which waits for `start`."""

from ocirun.cli.options import opt

USAGE = "create [options] <container-id>"
OPTIONS = [
    opt("--bundle", "-b", default=".", help="path to the bundle directory"),
    opt("--pid-file", help="file to write the init's host pid to"),
    opt("--console-socket", help="unix socket to send the pty master to (terminal: true)"),
    opt("--no-pivot", kind=bool, help="use chroot instead of pivot_root"),
    opt("--no-new-keyring", kind=bool, help="do not create a new session keyring"),
    opt("--preserve-fds", kind=int, default=0, help="pass N fds beyond stdio to the container"),
]


def create_options(opts: dict, ctx):
    from ocirun.process.builder import CreateOptions

    return CreateOptions(opts["bundle"], opts["pid_file"], opts["console_socket"],
                         opts["no_pivot"], opts["preserve_fds"],
                         new_keyring=not opts["no_new_keyring"],
                         systemd_cgroup=ctx.systemd_cgroup,
                         rootless_cgroups=ctx.rootless_cgroups)  # fmt: skip


def run(ctx, opts: dict, args: list[str]) -> int:
    from ocirun.cli import one_id
    from ocirun.container import create

    create(ctx.root, one_id(args), create_options(opts, ctx))
    return 0
