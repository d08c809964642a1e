"""A small command-line parser for runc's flag style, cheaper to import than argparse.

Flags come as `--flag value`, `--flag=value` or `-f value`; boolean flags take no value (an
explicit `--flag=true|false` is accepted too). The first word that is not a flag ends the options
of a command unless the command takes options after its arguments (runc accepts both orders).
Values that need more than int() are parsed here too: Go durations (`events --interval`).
"""

from ocirun.errors import UsageError


class Option:
    """One flag: its spellings, kind (str, int, bool, or list for repeatable flags) and default."""

    __slots__ = ("names", "kind", "default", "help", "dest")

    def __init__(self, names: tuple[str, ...], kind: type, default: object, help: str) -> None:
        self.names = names
        self.kind = kind
        self.default = default
        self.help = help
        long = next((n for n in names if n.startswith("--")), names[0])
        self.dest = long.lstrip("-").replace("-", "_")


def opt(*names: str, kind: type = str, default: object = None, help: str = "") -> Option:
    """Declare a flag; bool flags default to False, list (repeatable) flags to []."""
    if kind is bool and default is None:
        default = False
    if kind is list and default is None:
        default = ()
    return Option(names, kind, default, help)


def _convert(option: Option, name: str, value: str) -> object:
    if option.kind is int:
        try:
            return int(value)
        except ValueError:
            raise UsageError(f"invalid value {value!r} for flag {name}: not an integer") from None
    if option.kind is bool:
        if value.lower() in ("true", "1"):
            return True
        if value.lower() in ("false", "0"):
            return False
        raise UsageError(f"invalid value {value!r} for flag {name}: not a boolean")
    return value


def parse(
    options: list[Option], argv: list[str], stop_at_first_arg: bool = False
) -> tuple[dict, list]:
    """Split argv into {dest: value} and positional arguments.

    With stop_at_first_arg, everything from the first positional argument on is positional
    (for `exec ID CMD ARGS...` and the global flags before the command word).
    """
    by_name = {name: o for o in options for name in o.names}
    values: dict[str, object] = {
        o.dest: (list(o.default) if o.kind is list else o.default) for o in options
    }
    args: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--":
            args.extend(argv[i:])
            break
        if not word.startswith("-") or word == "-":
            args.append(word)
            if stop_at_first_arg:
                args.extend(argv[i:])
                break
            continue
        name, eq, inline = word.partition("=")
        option = by_name.get(name)
        if option is None:
            raise UsageError(f"flag provided but not defined: {name}")
        if option.kind is bool:
            values[option.dest] = _convert(option, name, inline) if eq else True
            continue
        if not eq:
            if i >= len(argv):
                raise UsageError(f"flag needs an argument: {name}")
            inline = argv[i]
            i += 1
        value = _convert(option, name, inline)
        if option.kind is list:
            values[option.dest].append(value)
        else:
            values[option.dest] = value
    return values, args


def usage_lines(options: list[Option]) -> list[str]:
    lines = []
    for o in options:
        spell = ", ".join(o.names) + ("" if o.kind is bool else " value")
        lines.append(f"   {spell:<28} {o.help}")
    return lines


DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                  "h": 3600.0}  # fmt: skip


def parse_duration(text: str) -> float:
    """A Go duration ("5s", "1m30s", "250ms", "1.5h") in seconds, as runc's --interval takes."""
    rest = text.removeprefix("+")
    sign = -1.0 if rest.startswith("-") else 1.0
    rest = rest.removeprefix("-")
    if rest == "0":
        return 0.0
    if not rest:
        raise UsageError(f"invalid duration {text!r} (e.g. 5s, 500ms, 1m30s)")
    total = 0.0
    while rest:
        digits = len(rest) - len(rest.lstrip("0123456789."))
        number, rest = rest[:digits], rest[digits:]
        letters = len(rest) - len(rest.lstrip("abcdefghijklmnopqrstuvwxyzµμ"))
        unit, rest = rest[:letters], rest[letters:]
        if number in ("", ".") or number.count(".") > 1 or unit not in DURATION_UNITS:
            raise UsageError(f"invalid duration {text!r} (e.g. 5s, 500ms, 1m30s)")
        total += float(number) * DURATION_UNITS[unit]
    return sign * total
