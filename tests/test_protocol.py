"""In-process tests of process/protocol.py: the order of the setup messages is checked, an
unknown or out-of-order message is an error, and a forked stage's failure comes back as one."""

import os

import pytest

from ocirun.errors import SetupError
from ocirun.process import protocol
from ocirun.process.protocol import (
    CGROUP,
    CREATE_ORDER,
    EXEC_ORDER,
    GO,
    HOOKS,
    MOUNT,
    PID,
    READY,
    USERNS,
    Channel,
    Messages,
)  # fmt: skip


@pytest.fixture
def channel():
    channel = Channel()  # both ends in this process: send() writes what receive() reads
    yield channel
    channel.close()


def received(channel: Channel, order: tuple[str, ...], *lines: str) -> list[tuple[str, str]]:
    for line in lines:
        channel.send(line)
    messages = Messages(channel, order)
    return [messages.next() for _ in lines]


def test_create_in_order_with_mounts_in_between(channel):
    lines = (USERNS, f"{PID} 42 move", f"{MOUNT} /a b", CGROUP, f"{MOUNT} /c", HOOKS, READY)
    assert received(channel, CREATE_ORDER, *lines) == [
        (USERNS, ""), (PID, "42 move"), (MOUNT, "/a b"), (CGROUP, ""), (MOUNT, "/c"),
        (HOOKS, ""), (READY, ""),
    ]  # fmt: skip


def test_steps_may_be_left_out(channel):
    assert received(channel, CREATE_ORDER, HOOKS, READY) == [(HOOKS, ""), (READY, "")]


@pytest.mark.parametrize(
    "lines, message",
    [
        (("hello",), "unknown message 'hello'"),
        ((HOOKS, CGROUP), "'cgroup' after 'hooks'"),
        ((f"{PID} 1", f"{PID} 2"), "'pid' after 'pid'"),
        ((READY, f"{MOUNT} /x", READY), "'ready' after 'ready'"),
    ],
)
def test_unknown_or_out_of_order_is_an_error(channel, lines, message):
    with pytest.raises(SetupError, match=message):
        received(channel, CREATE_ORDER, *lines)


def test_exec_knows_only_pid(channel):
    assert received(channel, EXEC_ORDER, f"{PID} 7") == [(PID, "7")]
    with pytest.raises(SetupError, match="unknown message 'hooks'"):
        received(channel, EXEC_ORDER, HOOKS)


def test_error_raises_its_message(channel):
    with pytest.raises(SetupError, match="^mounts\\[0\\]: no such device$"):
        received(channel, CREATE_ORDER, f"{protocol.ERROR} mounts[0]: no such device")


def test_a_message_is_one_line(channel):
    channel.send(f"{protocol.ERROR} two\nlines")
    with pytest.raises(SetupError, match="^two lines$"):
        Messages(channel, CREATE_ORDER).next()


def fork_stage(channel: Channel, function) -> int:
    pid = os.fork()
    if pid == 0:
        protocol.run_child(channel.as_child(), function, channel)
    channel.as_parent()
    return pid


def test_a_stage_waits_for_go_and_its_error_comes_back(channel):
    def stage(child: Channel) -> None:
        child.send(HOOKS)
        child.wait_go()
        raise SetupError("hooks done, then this")

    pid = fork_stage(channel, stage)
    messages = Messages(channel, CREATE_ORDER)
    assert messages.next() == (HOOKS, "")
    channel.send(GO)
    with pytest.raises(SetupError, match="^hooks done, then this$"):
        messages.next()
    assert os.waitpid(pid, 0)[1] != 0


def test_a_stage_refuses_any_answer_but_go(channel):
    pid = fork_stage(channel, lambda child: (child.send(HOOKS), child.wait_go()))
    messages = Messages(channel, CREATE_ORDER)
    assert messages.next() == (HOOKS, "")
    channel.send("maybe")
    with pytest.raises(SetupError, match="expected 'go' from ocirun, got 'maybe'"):
        messages.next()
    os.waitpid(pid, 0)


def test_a_stage_that_dies_ends_the_conversation(channel):
    pid = fork_stage(channel, lambda child: os._exit(0))
    with pytest.raises(SetupError, match="exited during setup"):
        Messages(channel, CREATE_ORDER).next()
    os.waitpid(pid, 0)
