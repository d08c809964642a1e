"""`{{name}}` placeholders in case data, filled in from the running case."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*([\w.:-]+)\s*\}\}")

Lookup = Callable[[str], Any]


class TemplateError(Exception):
    pass


def render_string(text: str, lookup: Lookup) -> Any:
    """Fill placeholders; a string that is one placeholder keeps the value's type."""
    whole = PLACEHOLDER.fullmatch(text)
    if whole:
        return lookup(whole.group(1))
    return PLACEHOLDER.sub(lambda m: str(lookup(m.group(1))), text)


def render(value: Any, lookup: Lookup) -> Any:
    if isinstance(value, str):
        return render_string(value, lookup)
    if isinstance(value, list):
        return [render(item, lookup) for item in value]
    if isinstance(value, dict):
        return {render(k, lookup): render(v, lookup) for k, v in value.items()}
    return value
