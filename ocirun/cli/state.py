"""Print the state of a container as JSON."""

USAGE = "state <container-id>"
OPTIONS = []


def run(ctx, opts: dict, args: list[str]) -> int:
    import posix

    from ocirun import jsonio
    from ocirun.cli import one_id
    from ocirun.state import Container

    container = Container.load(ctx.root, one_id(args))
    posix.write(1, (jsonio.dumps_pretty(container.oci_state()) + "\n").encode())
    return 0
