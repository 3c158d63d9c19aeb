"""Durations as written in workflow files: `30s`, `15m`, `2h`, `1h30m`, `1d` or a number of seconds."""

import re

_DURATION = re.compile(r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(value: object) -> int:
    """Return whole seconds, or raise ValueError with a message fit for a user."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration: use e.g. 30s, 15m, 2h or 1h30m")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return value
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match and any(match.groupdict().values()):
            return sum(int(n) * _UNIT_SECONDS[unit] for unit, n in match.groupdict().items() if n)
    raise ValueError(f"{value!r} is not a duration: use e.g. 30s, 15m, 2h or 1h30m")


def format_duration(seconds: float) -> str:
    """Short human form used in summaries: `850ms`, `1.2s`, `2m 05s`, `1h 02m`."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
