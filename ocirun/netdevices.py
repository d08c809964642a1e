"""linux.netDevices: moving host network devices into the container's network namespace.

`create` calls `move` when the init's namespaces exist, before the prestart hooks. The work is
done by a forked helper, so that the ocirun process never changes its network namespace and
never imports pyroute2 (slow to import: only when netDevices is set). The helper opens a netlink
socket in the host's namespace, setns()es into the init's and opens a second socket there (a
socket keeps the namespace it was opened in). For each device it then checks that the name is
free in the container (unless it holds `%d`, a template the kernel completes), saves the
device's permanent global-scope addresses (the move flushes them), moves and renames it in one
request, sets it up and adds the addresses again. The first error comes back as one line.

Nothing is moved back on delete (the spec): when the namespace dies, the kernel returns
physical devices to the host and destroys virtual ones.
"""

import contextlib
import os
from collections.abc import Iterator

from ocirun.errors import SetupError

IFA_F_PERMANENT = 0x80
RT_SCOPE_UNIVERSE = 0
# the address flags RTM_NEWADDR takes from userspace: NODAD, OPTIMISTIC, HOMEADDRESS,
# MANAGETEMPADDR, NOPREFIXROUTE, MCAUTOJOIN (the others are the kernel's own state)
SETTABLE_FLAGS = 0x02 | 0x04 | 0x10 | 0x100 | 0x200 | 0x400


def move(devices: dict[str, dict], init_pid: int) -> None:
    """Move each device of linux.netDevices into the init's network namespace, or SetupError."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _helper(devices, init_pid, write_fd)
    os.close(write_fd)
    try:
        report = _read_all(read_fd)
    finally:
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
    if report:
        raise SetupError(report)
    if status != 0:
        raise SetupError(f"linux.netDevices: the helper process failed (wait status {status})")


def _read_all(fd: int) -> str:
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
    return data.decode(errors="replace")


def _helper(devices: dict[str, dict], init_pid: int, report_fd: int) -> None:
    """The forked helper: do the moves, write the error (if any) as one line, exit."""
    code = 1
    try:
        _move_all(devices, init_pid)
        code = 0
    except BaseException as exc:
        message = str(exc) if isinstance(exc, SetupError) else f"linux.netDevices: {exc}"
        os.write(report_fd, message.replace("\n", " ").encode())
    finally:
        os._exit(code)


def _move_all(devices: dict[str, dict], init_pid: int) -> None:
    from ocirun import load_site_packages
    from ocirun import syscalls as sc
    from ocirun.namespaces import NAMESPACE_FLAGS

    load_site_packages()  # pyroute2 lives there; the launcher may have skipped `site`
    from pyroute2 import IPRoute

    netns_fd = os.open(f"/proc/{init_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    with IPRoute() as host:
        sc.setns(netns_fd, NAMESPACE_FLAGS["network"])
        with IPRoute() as inside:
            for name, entry in devices.items():
                _move_one(host, inside, netns_fd, name, entry.get("name") or name)


def _move_one(host, inside, netns_fd: int, name: str, new_name: str) -> None:
    """Move one device from the host (socket `host`) to the container (socket `inside`)."""
    with _failing(name, "cannot find it on the host"):
        found = host.link_lookup(ifname=name)
    if not found:
        raise SetupError(f"linux.netDevices.{name}: no such network device on the host")
    if "%d" not in new_name and inside.link_lookup(ifname=new_name):
        raise SetupError(
            f"linux.netDevices.{name}: a network device named {new_name!r} "
            "already exists in the container"
        )
    with _failing(name, "cannot read its addresses"):
        addresses = [_address(msg) for msg in host.get_addr(index=found[0]) if _kept(msg)]
    before = _indexes(inside)
    with _failing(name, f"cannot move it into the container as {new_name!r}"):
        host.link("set", index=found[0], net_ns_fd=netns_fd, ifname=new_name)
    (index,) = _indexes(inside) - before
    with _failing(name, "cannot set it up in the container"):
        inside.link("set", index=index, state="up")
    for address in addresses:
        with _failing(name, f"cannot add address {address['address']} in the container"):
            inside.addr("add", index=index, **address)


@contextlib.contextmanager
def _failing(name: str, what: str) -> Iterator[None]:
    """Turn a netlink or OS error into a SetupError naming the device and the step."""
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        yield
    except (NetlinkError, OSError) as exc:
        code = exc.code if isinstance(exc, NetlinkError) else exc.errno
        raise SetupError(f"linux.netDevices.{name}: {what}: {os.strerror(code)}") from None


def _indexes(ipr) -> set[int]:
    return {link["index"] for link in ipr.get_links()}


def _flags(msg) -> int:
    """All the flags of an address (IFA_FLAGS holds those beyond ifa_flags' 8 bits)."""
    return msg.get_attr("IFA_FLAGS") or msg["flags"]


def _kept(msg) -> bool:
    """Whether an address moves with its device: permanent, of global scope (the spec)."""
    return bool(_flags(msg) & IFA_F_PERMANENT) and msg["scope"] == RT_SCOPE_UNIVERSE


def _address(msg) -> dict:
    """The arguments that add the address again: prefix, peer, broadcast, settable flags."""
    address = {
        "family": msg["family"], "prefixlen": msg["prefixlen"],
        "address": msg.get_attr("IFA_ADDRESS"), "flags": _flags(msg) & SETTABLE_FLAGS,
    }  # fmt: skip
    for key in ("local", "broadcast"):
        value = msg.get_attr(f"IFA_{key.upper()}")
        if value is not None:
            address[key] = value
    return address
