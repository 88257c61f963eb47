"""What PostgreSQL cannot store in a text column, refused by every validation before it reaches the database."""
import re

_NUL_OR_SURROGATE = re.compile("[\x00\ud800-\udfff]")


def unstorable(value: str) -> str | None:
    """Why ``value`` cannot be stored, or None: PostgreSQL cannot store NUL, and lone surrogates are not UTF-8."""
    found = _NUL_OR_SURROGATE.search(value)
    if found is None:
        return None
    return "Null characters are not allowed." if found.group() == "\x00" else "Surrogate characters are not allowed."
