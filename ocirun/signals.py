"""Signal names and numbers, without the `signal` module (it imports enum, on every command)."""

from ocirun.errors import UsageError

NUMBERS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7, "FPE": 8,
    "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15,
    "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22,
    "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29,
    "POLL": 29, "PWR": 30, "SYS": 31,
}  # fmt: skip


def parse(text: str) -> int:
    """ "9", "KILL", "SIGKILL", "sigkill" or "RTMIN+3" → a signal number; "0" checks that the
    process exists, as kill(2) does (runc accepts it)."""
    if text.isdigit():
        number = int(text)
        if 0 <= number < 65:
            return number
        raise UsageError(f"invalid signal: {text}")
    name = text.upper().removeprefix("SIG")
    if name in NUMBERS:
        return NUMBERS[name]
    for prefix, base, sign in (("RTMIN", 34, 1), ("RTMAX", 64, -1)):
        if name.startswith(prefix):
            offset = name[len(prefix) :].lstrip("+-") or "0"
            if offset.isdigit() and 34 <= base + sign * int(offset) <= 64:
                return base + sign * int(offset)
    raise UsageError(f"invalid signal: {text}")
