"""Times given on the command line: ISO 8601 or relative ('15m', '7d')."""

import datetime
import re

from osprof_collector import events

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days",
         "w": "weeks"}
RELATIVE = re.compile(r"^(\d{1,6})([smhdw])$")


def parse_moment(text, now=None):
    """A naive UTC datetime: ISO 8601, or that long ago ('2h' = 2 hours)."""
    match = RELATIVE.match(text.strip())
    if match:
        now = now or datetime.datetime.utcnow()
        return now - parse_age(text)
    moment = events.parse_timestamp(text.strip())
    if moment is None:
        raise ValueError(f"invalid time {text!r}: expected ISO 8601 "
                         f"(2026-11-26T10:00:00) or an age such as 15m, "
                         f"2h, 7d")
    return moment


def parse_age(text):
    """A timedelta from '30s', '15m', '2h', '7d', '1w'."""
    match = RELATIVE.match(text.strip())
    if not match:
        raise ValueError(f"invalid age {text!r}: expected a number and a "
                         f"unit (s, m, h, d, w), e.g. 7d")
    age = datetime.timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
    try:
        datetime.datetime.utcnow() - age
    except OverflowError:
        raise ValueError(f"invalid age {text!r}: that long ago is before "
                         f"the year 1") from None
    return age
