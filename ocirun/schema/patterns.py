"""The `pattern`s of the OCI schemas as string predicates, so that checking them needs no `re`.

Each predicate answers exactly what `re.search(pattern, s)` answers (jsonschema's semantics): `.`
does not match a newline and `$` also matches just before a final newline. Any other pattern falls
back to `re`, imported only then.
"""

_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGITS = frozenset("0123456789")
_UPPER_UNDERSCORE = _UPPER | {"_"}
_CPU_LIST = _DIGITS | {",", " ", "-"}


def _chomp(s: str) -> str:
    """`s` without one final newline, which `$` matches before."""
    return s[:-1] if s.endswith("\n") else s


def _word(s: str, prefix: str, chars: frozenset) -> bool:
    """Whether `s` is `prefix` followed by one or more of `chars`."""
    return len(s) > len(prefix) and s.startswith(prefix) and set(s[len(prefix) :]) <= chars


def _page_size(s: str) -> bool:
    """`^[1-9][0-9]*[KMG]B$`"""
    s = _chomp(s)
    return (
        len(s) >= 3
        and s[0] in "123456789"
        and set(s[1:-2]) <= _DIGITS
        and s[-2] in "KMG"
        and s[-1] == "B"
    )


PREDICATES = {
    "^RLIMIT_[A-Z]+$": lambda s: _word(_chomp(s), "RLIMIT_", _UPPER),
    "^CAP_[A-Z_]+$": lambda s: _word(_chomp(s), "CAP_", _UPPER_UNDERSCORE),
    "^[cbup]$": lambda s: _chomp(s) in ("c", "b", "u", "p"),
    "^[0-9, -]*$": lambda s: set(_chomp(s)) <= _CPU_LIST,
    "^[1-9][0-9]*[KMG]B$": _page_size,
    "^MB:[^\\n]*$": lambda s: _chomp(s).startswith("MB:") and "\n" not in _chomp(s),
    ".{1,}": lambda s: s.strip("\n") != "",
}


def search(pattern: str, s: str) -> bool:
    """Whether `pattern` matches somewhere in `s`, like `re.search`."""
    predicate = PREDICATES.get(pattern)
    if predicate is not None:
        return predicate(s)
    import re

    return re.search(pattern, s) is not None
