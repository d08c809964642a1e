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
    """Parse one JSON document, like json.loads; JSONError for anything that is not one."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONError(f"not UTF-8 at byte {exc.start}: {exc.reason}") from None
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as exc:
        raise JSONError(f"invalid JSON at offset {exc.value}") from None
    except RecursionError:
        raise JSONError("invalid JSON: nested too deeply") from None
    except (ValueError, SystemError):  # the C scanner's own errors
        raise JSONError(_explain(text, start)) from None
    if text[end:].strip(_WHITESPACE):
        raise JSONError(f"extra data at offset {end}")
    if ("\\ud" in text or "\\uD" in text) and _has_lone_surrogate(value):
        raise JSONError("invalid JSON: a \\u escape names half a surrogate pair")
    return value


def _has_lone_surrogate(value: object) -> bool:
    """Whether a string in value holds an unpaired surrogate (no valid UTF-8 for it: paths,
    hostnames and the like could not be passed on)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


def _explain(text: str, start: int) -> str:
    """The scanner's own words for an error: it words them through json.decoder, and
    without that module loaded it reports only a SystemError (loaded here, on errors only)."""
    import json.decoder  # noqa: F401

    try:
        _scan(text, start)
    except StopIteration as exc:
        return f"invalid JSON at offset {exc.value}"
    except ValueError as exc:
        return str(exc)
    return "invalid JSON"


def load_file(path: str) -> object:
    with open(path, "rb") as f:
        return loads(f.read())


def load_object(path: str) -> dict:
    """A file that must hold one JSON object (JSONError if it holds anything else)."""
    value = load_file(path)
    if not isinstance(value, dict):
        raise JSONError(f"must hold a JSON object, not {_kind(value)}")
    return value


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


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
