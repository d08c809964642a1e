"""SCMP_ACT_NOTIFY: the listener fd and the container state reach the agent at listenerPath,
which then answers the container's calls (a small agent in this test, in a thread)."""

import array
import fcntl
import json
import os
import select
import socket
import struct
import threading

import pytest
from helpers import run_probe

NOTIF_RECV = 0xC0502100  # _IOWR('!', 0, struct seccomp_notif): 80 bytes
NOTIF_SEND = 0xC0182101  # _IOWR('!', 1, struct seccomp_notif_resp): 24 bytes
ENOMEDIUM = 123
MKDIR = 83


class Agent:
    """Accepts one container process state per connection; answers every notified call with
    ENOMEDIUM, and records the messages and the syscall numbers it saw."""

    def __init__(self, path: str) -> None:
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(4)
        self.messages: list[dict] = []
        self.calls: list[int] = []
        self.fd_counts: list[int] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                fds = array.array("i")
                data, ancdata, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(4 * fds.itemsize))
                for level, kind, payload in ancdata:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                self.messages.append(json.loads(data))
                self.fd_counts.append(len(fds))
            threading.Thread(target=self._answer, args=(fds[0],), daemon=True).start()

    def _answer(self, fd: int) -> None:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        try:
            while True:
                events = poller.poll(20000)
                if not events or events[0][1] & (select.POLLHUP | select.POLLERR):
                    return
                notif = bytearray(80)
                try:
                    fcntl.ioctl(fd, NOTIF_RECV, notif)
                except OSError:
                    continue  # the caller went away before we received it
                call_id = struct.unpack_from("Q", notif, 0)[0]
                self.calls.append(struct.unpack_from("i", notif, 16)[0])
                try:
                    fcntl.ioctl(fd, NOTIF_SEND, bytearray(struct.pack("QqiI", call_id, 0,
                                                                      -ENOMEDIUM, 0)))  # fmt: skip
                except OSError:
                    pass
        finally:
            os.close(fd)

    def close(self) -> None:
        self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()


@pytest.fixture
def agent(tmp_path):
    running = Agent(str(tmp_path / "agent.sock"))
    yield running
    running.close()


def notify_profile(agent_path: str, names: list[str]) -> dict:
    return {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": agent_path,
            "listenerMetadata": "meta-data", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": names, "action": "SCMP_ACT_NOTIFY"}]}  # fmt: skip


@pytest.mark.parametrize("nnp", [True, False])
def test_the_agent_answers_the_containers_calls(ocirun, make_bundle, cid, agent, tmp_path, nnp):
    bundle = make_bundle()
    bundle.config["process"]["noNewPrivileges"] = nnp
    bundle.config["annotations"] = {"org.example": "yes"}
    path = str(tmp_path / "agent.sock")
    bundle.config["linux"]["seccomp"] = notify_profile(path, ["mkdir", "mkdirat"])
    out = run_probe(ocirun, bundle, cid, "mkdir /tmp/made 2>&1; test -d /tmp/made || echo none")
    assert "No medium found" in out and out.endswith("none\n")
    assert agent.calls == [MKDIR] and agent.fd_counts == [1]
    (message,) = agent.messages
    assert message["fds"] == ["seccompFd"] and message["metadata"] == "meta-data"
    state = message["state"]
    assert state["id"] == cid and state["bundle"] == str(bundle.path)
    assert state["annotations"] == {"org.example": "yes"} and message["pid"] == state["pid"] > 0


def test_an_exec_process_hands_its_listener_to_the_agent(ocirun, make_bundle, cid, agent, tmp_path):
    bundle = make_bundle(["sleep", "30"])
    bundle.config["linux"]["seccomp"] = notify_profile(str(tmp_path / "agent.sock"), ["mkdir"])
    ocirun("run", "-d", "--bundle", bundle.write(), cid, check=True)
    result = ocirun("exec", cid, "sh", "-c", "mkdir /tmp/x 2>&1; true")
    assert result.returncode == 0 and "No medium found" in result.stdout, result
    assert len(agent.messages) == 2 and agent.calls == [MKDIR]
    init, execd = agent.messages
    assert execd["state"]["pid"] == init["pid"] != execd["pid"]
    assert execd["state"]["status"] == "running"


def test_without_an_agent_nothing_runs_and_nothing_is_left(ocirun, make_bundle, cid, tmp_path):
    bundle = make_bundle(["sh", "-c", "touch /dev/shm/ran"])
    bundle.config["linux"]["seccomp"] = notify_profile(str(tmp_path / "nobody.sock"), ["mkdir"])
    result = ocirun("run", "--bundle", bundle.write(), cid)
    assert result.returncode != 0
    assert "failed to connect with seccomp agent" in result.stderr
    assert cid not in ocirun.ids()


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s.update(listenerPath=""), "listenerPath"),
        (lambda s: s["syscalls"][0].update(names=["write"]), "cannot be used for the write"),
        (lambda s: s.update(defaultAction="SCMP_ACT_NOTIFY"), "default action"),
    ],
)
def test_profiles_the_agent_protocol_cannot_serve_are_refused(
    ocirun, make_bundle, cid, tmp_path, change, message
):  # fmt: skip
    bundle = make_bundle()
    profile = notify_profile(str(tmp_path / "agent.sock"), ["mkdir"])
    change(profile)
    bundle.config["linux"]["seccomp"] = profile
    result = ocirun("create", "--bundle", bundle.write(), cid)
    assert result.returncode == 1 and message in result.stderr
    assert cid not in ocirun.ids()


def test_the_agent_going_away_makes_the_calls_fail_with_enosys(ocirun, make_bundle, cid, tmp_path):
    """With no listener left the kernel answers ENOSYS: neither ocirun nor the init may keep
    a copy of the listener fd open."""
    agent = Agent(str(tmp_path / "agent.sock"))
    agent._answer = lambda fd: os.close(fd)  # takes the listener and lets it go at once
    bundle = make_bundle()
    bundle.config["linux"]["seccomp"] = notify_profile(str(tmp_path / "agent.sock"), ["mkdir"])
    try:
        out = run_probe(ocirun, bundle, cid, "mkdir /tmp/x 2>&1; true")
    finally:
        agent.close()
    assert "Function not implemented" in out
