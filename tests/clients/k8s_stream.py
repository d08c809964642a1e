"""The client side of the CRI streaming server's exec and attach, as kubectl speaks it over
WebSocket (subprotocol v4.channel.k8s.io): each binary message starts with a channel byte,
0 stdin, 1 stdout, 2 stderr, 3 the final status as JSON.
"""

import base64
import json
import os
import socket
import struct
from urllib.parse import urlsplit

from netns import NetworkNamespace

STDIN, STDOUT, STDERR, STATUS = 0, 1, 2, 3
OPCODE_BINARY, OPCODE_CLOSE = 0x2, 0x8


class Stream:
    """One exec or attach session on the streaming server at url, from inside netns."""

    def __init__(self, netns: NetworkNamespace, url: str):
        parts = urlsplit(url)
        self.connection = netns.connect(parts.hostname, parts.port)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n"
        )
        self.connection.sendall(request.encode())
        self.reader = self.connection.makefile("rb")
        status_line = self.reader.readline()
        while self.reader.readline() not in (b"\r\n", b""):
            pass
        assert b" 101 " in status_line, status_line

    def send(self, data: bytes, channel: int = STDIN):
        """A masked binary frame to the server (clients must mask), on channel."""
        payload = bytes([channel]) + data
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x80 | OPCODE_BINARY, 0x80 | length)
        else:
            header = struct.pack("!BBH", 0x80 | OPCODE_BINARY, 0x80 | 126, length)
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        self.connection.sendall(header + mask + masked)

    def frames(self):
        """(channel, data) of each message until the server closes the stream."""
        while True:
            head = self.reader.read(2)
            if len(head) < 2:
                return
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self.reader.read(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", self.reader.read(8))
            payload = self.reader.read(length)
            if opcode == OPCODE_CLOSE:
                return
            if opcode == OPCODE_BINARY and payload:
                yield payload[0], payload[1:]

    def collect(self) -> tuple[bytes, bytes, dict | None]:
        """stdout, stderr and the status (None when the server sent none) up to the end."""
        output = {STDOUT: b"", STDERR: b""}
        status = None
        for channel, data in self.frames():
            if channel == STATUS and data:
                status = json.loads(data)
            elif channel in output:
                output[channel] += data
        return output[STDOUT], output[STDERR], status

    def read_until(self, channel: int, text: bytes) -> bytes:
        """What arrives on channel until it holds text (or the stream ends)."""
        received = b""
        for got, data in self.frames():
            if got == channel:
                received += data
                if text in received:
                    break
        return received

    def close(self):
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.reader.close()
        self.connection.close()


def exit_code(status: dict | None) -> int:
    """The exit code a v4 status reports: 0 on Success, else the ExitCode cause."""
    if status is None or status.get("status") == "Success":
        return 0
    causes = status.get("details", {}).get("causes", [])
    return int(next(c["message"] for c in causes if c.get("reason") == "ExitCode"))
