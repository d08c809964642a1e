"""JSON in and out through the C codec `_json`, without importing the `json` package.

`import json` pulls in `re` and `enum` (about 15 ms on this machine, more than the whole budget
of `ocirun state`), only to compile regular expressions the C codec never uses. These few lines
drive the same C scanner and encoder that `json.loads` and `json.dumps` use.
"""

import _json

_WHITESPACE = " \t\n\r"


def _constant(name: str) -> float:
    return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


class _Context:
    """The attributes `_json.make_scanner` reads, as json.JSONDecoder would provide them."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_constant)
    memo: dict = {}


_scan = _json.make_scanner(_Context())


class JSONError(ValueError):
    """Text that is not one JSON document."""


def loads(text: str | bytes) -> object:
    """Parse one JSON document, like json.loads."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as exc:
        raise JSONError(f"invalid JSON at offset {exc.value}") from None
    except ValueError as exc:  # json.JSONDecodeError, raised by the C scanner
        raise JSONError(str(exc)) from None
    if text[end:].strip(_WHITESPACE):
        raise JSONError(f"extra data at offset {end}")
    return value


def load_file(path: str) -> object:
    with open(path, "rb") as f:
        return loads(f.read())


def _default(obj: object) -> object:
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


_encode = _json.make_encoder(
    None, _default, _json.encode_basestring_ascii, None, ":", ",", False, False, True
)
_encode_sorted = _json.make_encoder(
    None, _default, _json.encode_basestring_ascii, None, ":", ",", True, False, True
)


def dumps(value: object, sort_keys: bool = False) -> str:
    """Serialise compactly (no spaces), like json.dumps(separators=(",", ":"))."""
    return "".join((_encode_sorted if sort_keys else _encode)(value, 0))


def dumps_pretty(value: object, indent: str = "  ", level: int = 0) -> str:
    """Indented output for humans, in the layout of Go's json.MarshalIndent (used by runc)."""
    inner = indent * (level + 1)
    if isinstance(value, dict) and value:
        items = [
            f"{inner}{_json.encode_basestring_ascii(str(k))}: {dumps_pretty(v, indent, level + 1)}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + indent * level + "}"
    if isinstance(value, list) and value:
        items = [inner + dumps_pretty(v, indent, level + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + indent * level + "]"
    return dumps(value)
