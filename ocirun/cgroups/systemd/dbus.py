"""A minimal D-Bus client for systemd's manager: method calls and JobRemoved, nothing more.

Hand-written rather than a library: the D-Bus libraries for Python import `re`, `enum` and
`typing` (jeepney's blocking client ~35 ms here) or need libdbus (dbus-python), and this runs
inside `create` and `delete`. Only what systemd's Manager interface needs is here: the
little-endian wire format of the D-Bus specification for the basic types, arrays, structs,
dict entries and variants; SASL EXTERNAL authentication; one connection, used by one thread.

Values: basic types as Python ints, bools and strs; arrays as lists (a dict for a{..});
structs as tuples; a variant as (signature, value).
"""

import os
import struct

from ocirun.errors import CgroupError

PRIVATE_SOCKET = "/run/systemd/private"  # systemd's own, for root: no bus daemon in between
SYSTEM_BUS = "/run/dbus/system_bus_socket"
SYSTEMD = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
TIMEOUT = 30.0  # for a job to finish, as runc waits

_CALL, _RETURN, _ERROR, _SIGNAL = 1, 2, 3, 4
_FIXED = {"y": "B", "n": "h", "q": "H", "i": "i", "u": "I", "x": "q", "t": "Q", "d": "d", "h": "I"}
_ALIGN = {"y": 1, "g": 1, "v": 1, "n": 2, "q": 2, "b": 4, "i": 4, "u": 4, "h": 4, "s": 4,
          "o": 4, "a": 4, "x": 8, "t": 8, "d": 8, "(": 8, "{": 8}  # fmt: skip


class DBusError(CgroupError):
    """An error reply: name is the D-Bus error name (org.freedesktop.systemd1.NoSuchUnit)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"systemd: {message} ({name})")
        self.name = name


def split_signature(signature: str) -> list[str]:
    """The complete types of a signature: "sa(sv)b" -> ["s", "a(sv)", "b"]."""
    types, i = [], 0
    while i < len(signature):
        end = _type_end(signature, i)
        types.append(signature[i:end])
        i = end
    return types


def _type_end(signature: str, i: int) -> int:
    char = signature[i] if i < len(signature) else ""
    if char == "a":
        return _type_end(signature, i + 1)
    if char in "({":
        close = ")" if char == "(" else "}"
        i += 1
        while i < len(signature) and signature[i] != close:
            i = _type_end(signature, i)
        if i >= len(signature):
            raise ValueError(f"unbalanced D-Bus signature {signature!r}")
        return i + 1
    if char and char in "ybnqiuxtdhsogv":
        return i + 1
    raise ValueError(f"invalid D-Bus signature {signature!r}")


def marshal(buf: bytearray, signature: str, values: list) -> None:
    """Append the values of the signature's complete types to buf (aligned from its start)."""
    for type_, value in zip(split_signature(signature), values, strict=True):
        _put(buf, type_, value)


def _pad(buf: bytearray, alignment: int) -> None:
    buf.extend(b"\0" * (-len(buf) % alignment))


def _put(buf: bytearray, type_: str, value) -> None:
    char = type_[0]
    _pad(buf, _ALIGN[char])
    if char in _FIXED:
        buf.extend(struct.pack("<" + _FIXED[char], value))
    elif char == "b":
        buf.extend(struct.pack("<I", 1 if value else 0))
    elif char in "so":
        data = value.encode()
        buf.extend(struct.pack("<I", len(data)) + data + b"\0")
    elif char == "g":
        data = value.encode()
        buf.extend(bytes((len(data),)) + data + b"\0")
    elif char == "v":
        signature, inner = value
        _put(buf, "g", signature)
        _put(buf, signature, inner)
    elif char == "a":
        at = len(buf)
        buf.extend(b"\0\0\0\0")
        element = type_[1:]
        _pad(buf, _ALIGN[element[0]])
        start = len(buf)
        if element[0] == "{":
            key, item = split_signature(element[1:-1])
            for k, v in value.items():
                _pad(buf, 8)
                _put(buf, key, k)
                _put(buf, item, v)
        elif element == "y" and isinstance(value, bytes | bytearray):
            buf.extend(value)
        else:
            for item in value:
                _put(buf, element, item)
        struct.pack_into("<I", buf, at, len(buf) - start)
    elif char == "(":
        for member, item in zip(split_signature(type_[1:-1]), value, strict=True):
            _put(buf, member, item)


def unmarshal(data: bytes, offset: int, signature: str) -> tuple[list, int]:
    """The values of the signature read from data at offset (aligned from data's start)."""
    values = []
    for type_ in split_signature(signature):
        value, offset = _get(data, offset, type_)
        values.append(value)
    return values, offset


def _get(data: bytes, offset: int, type_: str):
    char = type_[0]
    offset += -offset % _ALIGN[char]
    if char in _FIXED:
        fmt = "<" + _FIXED[char]
        return struct.unpack_from(fmt, data, offset)[0], offset + struct.calcsize(fmt)
    if char == "b":
        return struct.unpack_from("<I", data, offset)[0] != 0, offset + 4
    if char in "so":
        size = struct.unpack_from("<I", data, offset)[0]
        return data[offset + 4 : offset + 4 + size].decode(), offset + 5 + size
    if char == "g":
        size = data[offset]
        return data[offset + 1 : offset + 1 + size].decode(), offset + 2 + size
    if char == "v":
        signature, offset = _get(data, offset, "g")
        value, offset = _get(data, offset, signature)
        return (signature, value), offset
    if char == "a":
        size = struct.unpack_from("<I", data, offset)[0]
        element = type_[1:]
        offset += 4
        offset += -offset % _ALIGN[element[0]]
        end = offset + size
        if element[0] == "{":
            key, item = split_signature(element[1:-1])
            result: dict = {}
            while offset < end:
                offset += -offset % 8
                k, offset = _get(data, offset, key)
                result[k], offset = _get(data, offset, item)
            return result, end
        if element == "y":
            return data[offset:end], end
        items = []
        while offset < end:
            item, offset = _get(data, offset, element)
            items.append(item)
        return items, end
    members = []
    for member in split_signature(type_[1:-1]):
        item, offset = _get(data, offset, member)
        members.append(item)
    return tuple(members), offset


class _Timeout(CgroupError):
    pass


class Connection:
    """One authenticated connection to systemd: its private socket when we may use it (root),
    else the system bus (then with Hello and a match rule for JobRemoved)."""

    def __init__(self, path: str = "") -> None:
        """path: a socket to use instead (tests: a bus daemon of their own)."""
        import _socket

        address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", "")
        candidates = [PRIVATE_SOCKET] if os.geteuid() == 0 else []
        system = address.removeprefix("unix:path=").partition(",")[0] if address else SYSTEM_BUS
        candidates.append(system)
        if path:
            candidates = [path]
        self.sock = None
        errors = []
        for candidate in candidates:
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
            sock.settimeout(TIMEOUT)
            try:
                sock.connect(candidate)
            except OSError as e:
                sock.close()
                errors.append(f"{candidate}: {e.strerror or e}")
                continue
            self.sock, self.bus = sock, candidate != PRIVATE_SOCKET
            break
        if self.sock is None:
            raise CgroupError(f"cannot reach systemd over D-Bus ({'; '.join(errors)})")
        self.serial = 0
        self.buffer = b""
        self.signals: list[tuple[str, list]] = []  # (member, body) received while waiting
        self._authenticate()
        if not self.bus:
            self._ping_until_answered()
        else:
            self.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                      "Hello")  # fmt: skip
            rule = (f"type='signal',sender='{SYSTEMD}',interface='{MANAGER}',"
                    "member='JobRemoved'")  # fmt: skip
            self.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                      "AddMatch", "s", [rule])  # fmt: skip

    def close(self) -> None:
        self.sock.close()

    def _authenticate(self) -> None:
        uid = str(os.geteuid()).encode().hex().encode()
        self.sock.sendall(b"\0AUTH EXTERNAL " + uid + b"\r\n")
        line = self._line()
        if not line.startswith(b"OK "):
            raise CgroupError(f"D-Bus authentication refused: {line.decode(errors='replace')}")
        self.sock.sendall(b"BEGIN\r\n")

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._fill()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def _fill(self) -> None:
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise _Timeout("systemd did not answer over D-Bus in time") from None
        if not chunk:
            raise CgroupError("systemd closed the D-Bus connection")
        self.buffer += chunk

    def _exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _send(self, destination: str, path: str, interface: str, member: str,
              signature: str = "", args: list | None = None) -> int:  # fmt: skip
        """Send a method call; its serial."""
        self.serial += 1
        body = bytearray()
        if signature:
            marshal(body, signature, args or [])
        fields = [(1, ("o", path)), (2, ("s", interface)), (3, ("s", member)),
                  (6, ("s", destination))]  # fmt: skip
        if signature:
            fields.append((8, ("g", signature)))
        message = bytearray()
        marshal(message, "yyyyuua(yv)", [ord("l"), _CALL, 0, 1, len(body), self.serial, fields])
        _pad(message, 8)
        self.sock.sendall(bytes(message + body))
        return self.serial

    def call(self, destination: str, path: str, interface: str, member: str,
             signature: str = "", args: list | None = None) -> list:  # fmt: skip
        """Call a method and return the reply's values; DBusError for an error reply."""
        serial = self._send(destination, path, interface, member, signature, args)
        return self._reply({serial})

    def _reply(self, serials: set[int]) -> list:
        """The values of the first reply to one of the serials (signals are kept)."""
        while True:
            kind, headers, values = self._receive()
            if kind == _SIGNAL:
                self.signals.append((headers.get(3, ""), values))
            elif headers.get(5) in serials:
                if kind == _ERROR:
                    name = headers.get(4, "")
                    raise DBusError(name, values[0] if values and isinstance(values[0], str)
                                    else name)  # fmt: skip
                return values

    def _ping_until_answered(self) -> None:
        """Peer.Ping systemd until it answers one, before the first real call.

        systemd 252 (its sd-bus server) may leave a message unread that arrives right after
        BEGIN, in its read of the authentication, until more data comes: in a guest, 70% of
        the first calls got no answer at all, none with 50 ms between BEGIN and the call.
        A second Ping wakes it up; the extra answers are ignored (their serials)."""
        serials: set[int] = set()
        wait, waited = 0.02, 0.0
        while True:
            serials.add(self._send(SYSTEMD, MANAGER_PATH, "org.freedesktop.DBus.Peer", "Ping"))
            self.sock.settimeout(wait)
            try:
                self._reply(serials)
                break
            except _Timeout:
                waited += wait
                if waited >= TIMEOUT:
                    raise
                wait = min(wait * 2, 1.0)
            finally:
                self.sock.settimeout(TIMEOUT)

    def _receive(self) -> tuple[int, dict, list]:
        """The next message: its type, header fields by code, and body values."""
        fixed = self._exact(16)
        if fixed[0:1] != b"l":
            raise CgroupError("systemd answered in big-endian D-Bus, which ocirun does not read")
        kind = fixed[1]
        body_size, _, fields_size = struct.unpack_from("<III", fixed, 4)
        rest = self._exact(fields_size + (-(16 + fields_size) % 8) + body_size)
        header = fixed + rest[:fields_size]
        (fields,), _ = unmarshal(header, 12, "a(yv)")
        headers = {code: value for code, (_, value) in fields}
        body = rest[len(rest) - body_size :]
        values = unmarshal(body, 0, headers[8])[0] if headers.get(8) else []
        return kind, headers, values

    def manager(self, member: str, signature: str = "", args: list | None = None) -> list:
        return self.call(SYSTEMD, MANAGER_PATH, MANAGER, member, signature, args)

    def wait_job(self, job: str) -> str:
        """Wait for systemd's JobRemoved of the job; its result ("done", "failed", ...)."""
        import time

        deadline = time.monotonic() + TIMEOUT
        while True:
            for member, values in self.signals:
                if member == "JobRemoved" and len(values) == 4 and values[1] == job:
                    return values[3]
            self.signals.clear()
            if time.monotonic() > deadline:
                raise CgroupError(f"systemd did not finish job {job} in {TIMEOUT:.0f} s")
            kind, headers, values = self._receive()
            if kind == _SIGNAL:
                self.signals.append((headers.get(3, ""), values))
