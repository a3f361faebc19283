"""Counts in human text: "1 span", "2 spans"."""


def counted(count, noun, plural=None):
    """count and the noun, singular for exactly one."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {plural or noun + 's'}"
