"""The rdma controller; rdma.max is the same in cgroup v1 and v2 (runc fscommon/rdma.go)."""

from ocirun.cgroups.common import write


def apply(directory: str, rdma: dict) -> None:
    for device, limits in rdma.items():
        line = device
        if limits.get("hcaHandles") is not None:
            line += f" hca_handle={limits['hcaHandles']}"
        if limits.get("hcaObjects") is not None:
            line += f" hca_object={limits['hcaObjects']}"
        write(directory, "rdma.max", line)
