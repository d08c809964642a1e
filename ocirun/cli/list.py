"""List the containers under the state root."""

from ocirun.cli.options import opt

USAGE = "list [--format table|json] [-q]"
OPTIONS = [
    opt("--format", "-f", default="table", help="table or json"),
    opt("--quiet", "-q", kind=bool, help="print only the ids"),
]


def run(ctx, opts: dict, args: list[str]) -> int:
    import sys

    from ocirun import jsonio
    from ocirun.errors import OcirunError, UsageError
    from ocirun.state import Container, list_ids

    if opts["format"] not in ("table", "json"):
        raise UsageError(f"invalid format option: {opts['format']}")
    states = []
    for container_id in list_ids(ctx.root):
        try:
            states.append(Container.load(ctx.root, container_id).oci_state())
        except OcirunError:
            continue  # deleted while we were listing
    if opts["quiet"]:
        sys.stdout.write("".join(f"{s['id']}\n" for s in states))
    elif opts["format"] == "json":
        sys.stdout.write(jsonio.dumps(states) + "\n")
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], "root")
                 for s in states]  # fmt: skip
        widths = [max(len(r[i]) for r in rows) for i in range(6)]
        for row in rows:
            sys.stdout.write(
                "   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n"
            )
    return 0
