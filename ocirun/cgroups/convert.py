"""cgroup v1 values in the OCI config -> cgroup v2 values, with runc 1.1's formulas
(libcontainer/cgroups/utils.go) so that a container gets the same numbers under both runtimes."""

from ocirun.errors import CgroupError


def cpu_shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000], linearly:
    runc ConvertCPUSharesToCgroupV2Value: y = 1 + ((x - 2) * 9999) / 262142.
    (runc 1.3 moved to a quadratic mapping that sends 1024 to 100; 1.1 sends 1024 to 39.)"""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight [10, 1000] -> io.weight [1, 10000], linearly:
    runc ConvertBlkIOToIOWeightValue: y = 1 + (x - 10) * 9999 / 990."""
    if weight == 0:
        return 0
    return 1 + (weight - 10) * 9999 // 990


def memory_swap_to_v2(swap: int, memory: int) -> int:
    """OCI memory.swap is memory+swap (v1 memsw); memory.swap.max is swap alone.
    runc ConvertMemorySwapToCgroupV2Value: 0 is unset, -1 is max."""
    if memory == -1 and swap == 0:
        return -1  # unlimited memory with swap unset: unlimited swap too, as on v1
    if swap in (-1, 0):
        return swap
    if memory in (0, -1):
        raise CgroupError("memory.swap: a swap limit needs a memory limit on cgroup v2")
    if memory < 0:
        raise CgroupError(f"memory.limit: invalid value {memory}")
    if swap < memory:
        raise CgroupError(f"memory.swap ({swap}) must not be below memory.limit ({memory})")
    return swap - memory
