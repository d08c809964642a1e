"""cgroup v1 blkio controller (runc libcontainer/cgroups/fs/blkio.go)."""

from ocirun.cgroups.common import read_optional, write
from ocirun.errors import CgroupError


def apply(directory: str, blkio: dict) -> None:
    weight, leaf_weight = blkio.get("weight"), blkio.get("leafWeight")
    devices = blkio.get("weightDevice") or []
    if weight or any(d.get("weight") for d in devices):
        prefix = _weight_prefix(directory)
        if weight:
            write(directory, prefix + "weight", str(weight))
        for device in devices:
            if device.get("weight"):
                write(directory, prefix + "weight_device", _device(device, device["weight"]))
    if leaf_weight:
        write(directory, "blkio.leaf_weight", str(leaf_weight))
    for device in devices:
        if device.get("leafWeight"):
            write(directory, "blkio.leaf_weight_device", _device(device, device["leafWeight"]))
    for key, name in THROTTLE_FILES:
        for device in blkio.get(key) or []:
            write(directory, name, _device(device, device["rate"]))


THROTTLE_FILES = (
    ("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
    ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
    ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
    ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device"),
)


def _weight_prefix(directory: str) -> str:
    """CFQ has blkio.weight, BFQ blkio.bfq.weight; without either there is nothing to weigh."""
    for prefix in ("blkio.", "blkio.bfq."):
        if read_optional(directory, prefix + "weight") is not None:
            return prefix
    raise CgroupError(
        f"blockIO.weight: {directory} has neither blkio.weight nor blkio.bfq.weight "
        "(no CFQ or BFQ I/O scheduler with cgroup support in this kernel)"
    )


def _device(device: dict, value: int) -> str:
    return f"{device['major']}:{device['minor']} {value}"


# runc's order: the first group whose first file has entries wins.
STAT_GROUPS = (
    (  # BFQ with CONFIG_BFQ_CGROUP_DEBUG
        ("blkio.bfq.sectors_recursive", "sectorsRecursive"),
        ("blkio.bfq.io_service_time_recursive", "ioServiceTimeRecursive"),
        ("blkio.bfq.io_wait_time_recursive", "ioWaitTimeRecursive"),
        ("blkio.bfq.io_merged_recursive", "ioMergedRecursive"),
        ("blkio.bfq.io_queued_recursive", "ioQueueRecursive"),
        ("blkio.bfq.time_recursive", "ioTimeRecursive"),
        ("blkio.bfq.io_serviced_recursive", "ioServicedRecursive"),
        ("blkio.bfq.io_service_bytes_recursive", "ioServiceBytesRecursive"),
    ),
    (
        ("blkio.bfq.io_serviced_recursive", "ioServicedRecursive"),
        ("blkio.bfq.io_service_bytes_recursive", "ioServiceBytesRecursive"),
    ),
    (  # CFQ
        ("blkio.sectors_recursive", "sectorsRecursive"),
        ("blkio.io_service_time_recursive", "ioServiceTimeRecursive"),
        ("blkio.io_wait_time_recursive", "ioWaitTimeRecursive"),
        ("blkio.io_merged_recursive", "ioMergedRecursive"),
        ("blkio.io_queued_recursive", "ioQueueRecursive"),
        ("blkio.time_recursive", "ioTimeRecursive"),
        ("blkio.io_serviced_recursive", "ioServicedRecursive"),
        ("blkio.io_service_bytes_recursive", "ioServiceBytesRecursive"),
    ),
    (
        ("blkio.throttle.io_serviced_recursive", "ioServicedRecursive"),
        ("blkio.throttle.io_service_bytes_recursive", "ioServiceBytesRecursive"),
    ),
    (
        ("blkio.throttle.io_serviced", "ioServicedRecursive"),
        ("blkio.throttle.io_service_bytes", "ioServiceBytesRecursive"),
    ),
)


def stats(directory: str, out: dict) -> None:
    for group in STAT_GROUPS:
        for index, (name, key) in enumerate(group):
            entries = _entries(read_optional(directory, name) or "")
            if not entries:
                if index == 0:
                    break  # this group is not there: try the next one
                return
            out[key] = entries
        else:
            return


def _entries(text: str) -> list[dict]:
    """ "8:0 Read 4096" (or "8:0 4096" for sectors) lines; the "Total" line is skipped."""
    entries = []
    for line in text.splitlines():
        fields = line.replace(":", " ").split()
        if len(fields) < 3:
            continue
        entry = {"major": int(fields[0]), "minor": int(fields[1])}
        if len(fields) == 4:
            entry["op"] = fields[2]
        entry["value"] = int(fields[-1])
        entries.append({key: value for key, value in entry.items() if value})
    return entries
