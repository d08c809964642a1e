"""cgroup v2 io controller, from the config's blockIO (runc libcontainer/cgroups/fs2/io.go)."""

from ocirun.cgroups.common import key_values, read_optional, warn, write
from ocirun.cgroups.convert import blkio_weight_to_io_weight

THROTTLES = (
    ("throttleReadBpsDevice", "rbps"),
    ("throttleWriteBpsDevice", "wbps"),
    ("throttleReadIOPSDevice", "riops"),
    ("throttleWriteIOPSDevice", "wiops"),
)


def apply(directory: str, blkio: dict) -> None:
    weight = blkio.get("weight")
    devices = [d for d in blkio.get("weightDevice") or [] if d.get("weight")]
    if weight or devices:
        # BFQ takes the v1 weights as they are; without it, io.weight gets runc's conversion
        bfq = read_optional(directory, "io.bfq.weight")
        if weight and bfq is not None:
            write(directory, "io.bfq.weight", str(weight))
        elif weight:
            write(directory, "io.weight", str(blkio_weight_to_io_weight(weight)))
        # io.bfq.weight takes "MAJ:MIN WEIGHT" since Linux 5.4; it then reads "default N\n..."
        if devices and bfq is not None and not bfq.strip().isdigit():
            for device in devices:
                write(
                    directory,
                    "io.bfq.weight",
                    f"{device['major']}:{device['minor']} {device['weight']}",
                )
        elif devices:
            warn("blockIO.weightDevice ignored: no per-device BFQ weights in this kernel (as runc)")
    if blkio.get("leafWeight") or any(d.get("leafWeight") for d in blkio.get("weightDevice") or []):
        warn("blockIO.leafWeight: no cgroup v2 equivalent, ignored")
    for key, name in THROTTLES:
        for device in blkio.get(key) or []:
            write(
                directory, "io.max", f"{device['major']}:{device['minor']} {name}={device['rate']}"
            )


OPS = {  # io.stat key -> (runc's blkio list, op); runc 1.1 leaves discards out
    "rbytes": ("ioServiceBytesRecursive", "Read"),
    "wbytes": ("ioServiceBytesRecursive", "Write"),
    "rios": ("ioServicedRecursive", "Read"),
    "wios": ("ioServicedRecursive", "Write"),
}


def stats(directory: str, out: dict) -> None:
    """io.stat lines: "8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0"."""
    for line in (read_optional(directory, "io.stat") or "").splitlines():
        device, _, rest = line.partition(" ")
        major, _, minor = device.partition(":")
        values = key_values(rest.replace(" ", "\n").replace("=", " "))
        for key, (field, op) in OPS.items():
            if key in values:
                entry = {"major": int(major), "minor": int(minor), "op": op, "value": values[key]}
                out.setdefault(field, []).append({k: v for k, v in entry.items() if v})
