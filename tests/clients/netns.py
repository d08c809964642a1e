"""Network namespaces the client tests make, so that daemons' bridges, addresses, ports and
iptables rules never touch the host's."""

import ctypes
import os
import socket
from contextlib import contextmanager
from pathlib import Path

from client_managers import TIMEOUT, run, run_quietly

CLONE_NEWNET = 0x40000000


class NetworkNamespace:
    """A named network namespace (`ip netns`), its loopback up."""

    def __init__(self, name: str):
        self.name = name
        self.path = Path("/run/netns") / name

    def create(self):
        run(["ip", "netns", "add", self.name])
        run(["ip", "-n", self.name, "link", "set", "lo", "up"])

    def argv(self, *argv: str) -> list[str]:
        """argv in the namespace; unlike `ip netns exec`, keeps the mounts (/sys) as they are."""
        return ["nsenter", f"--net={self.path}", *argv]

    def delete(self):
        if self.path.exists():
            run_quietly(["ip", "netns", "delete", self.name])

    @contextmanager
    def entered(self):
        """The calling thread in the namespace (for sockets made meanwhile), then back."""
        libc = ctypes.CDLL(None, use_errno=True)
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(self.path, os.O_RDONLY)
        try:
            if libc.setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {self.path}")
            yield
        finally:
            libc.setns(own, CLONE_NEWNET)
            os.close(own)
            os.close(target)

    def connect(self, host: str, port: int) -> socket.socket:
        with self.entered():
            return socket.create_connection((host, port), timeout=TIMEOUT)


def ask(netns: NetworkNamespace, host: str, port: int) -> str:
    """The first line a server answers a connection from netns; "" when none is listening."""
    try:
        with netns.connect(host, port) as connection:
            return connection.makefile().readline()
    except OSError:
        return ""
