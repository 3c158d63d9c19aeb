"""A webhook trigger's `inputs` mapping: input name -> a path into the JSON body.

Syntax: `$` is the whole body; `.name` selects an object key (letters, digits, `_` and `-`);
`["any key"]` selects a key with other characters; `[N]` selects a list item (0-based).
Examples: `$.ref`, `$.release.tag_name`, `$.commits[0].id`, `$["x.y"]`. A path that finds
nothing leaves the input out (its default applies, or a required input is reported missing).
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

_TOKEN: Final = re.compile(r'\.([A-Za-z0-9_-]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')
_MISSING: Final = object()


def parse_path(path: str) -> list[str | int]:
    """`$.a[0]["b c"]` -> ["a", 0, "b c"]; ValueError names what is wrong."""
    if not path.startswith("$"):
        raise ValueError(f"{path!r} is not a body path: start it with $ (e.g. $.ref)")
    parts: list[str | int] = []
    position = 1
    while position < len(path):
        match = _TOKEN.match(path, position)
        if match is None:
            raise ValueError(f"{path!r}: cannot read the path at {path[position:]!r}")
        key, index, quoted = match.groups()
        parts.append(key if key is not None else int(index) if index is not None else json.loads(quoted))
        position = match.end()
    return parts


def path_problem(path: str) -> str | None:
    """Why `path` is not a valid mapping path, or None."""
    try:
        parse_path(path)
    except ValueError as exc:
        return str(exc)
    return None


def select(body: Any, path: str) -> Any:
    """The value at `path` in `body`, or `MISSING`."""
    value = body
    for part in parse_path(path):
        found = (isinstance(part, int) and isinstance(value, list) and part < len(value)) or (
            isinstance(part, str) and isinstance(value, dict) and part in value
        )
        if not found:
            return _MISSING
        value = value[part]
    return value


def map_inputs(mapping: dict[str, str], body: Any) -> dict[str, Any]:
    """The inputs `mapping` takes from `body`; inputs whose path finds nothing are left out."""
    inputs: dict[str, Any] = {}
    for name, path in mapping.items():
        value = select(body, path)
        if value is not _MISSING:
            inputs[name] = value
    return inputs
