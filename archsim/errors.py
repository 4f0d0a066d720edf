"""Exceptions a user can act on.

Every error caused by user input derives from :class:`ArchsimError`; the CLI prints its message on
one line and exits with code 2. Anything else is a bug in archsim and keeps its traceback.
"""

from __future__ import annotations


class ArchsimError(Exception):
    """An error the user can fix: bad input, an impossible design, an unknown name."""


# every character str.splitlines() breaks at
_LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"


def _one_line(text: str) -> str:
    # keys and values of a hostile file may hold line breaks; the CLI promises one line
    for char in _LINE_BREAKS:
        text = text.replace(char, char.encode("unicode_escape").decode("ascii"))
    return text


class ConfigError(ArchsimError):
    """A machine or workload file that does not validate.

    Parameters
    ----------
    path:
        The file the problem is in (or ``"<string>"`` for in-memory YAML).
    message:
        What is wrong and what is allowed.
    field:
        Dotted path of the offending field, when one applies.
    line:
        1-based line number in ``path``, when it is known.
    """

    def __init__(self, path: str, message: str, field: str | None = None, line: int | None = None):
        self.path = path
        self.field = field
        self.line = line
        self.detail = message
        where = path if line is None else f"{path}:{line}"
        what = f"field '{field}': " if field else ""
        super().__init__(_one_line(f"{where}: {what}{message}"))

    def __reduce__(self):
        # errors cross process boundaries in sweeps; rebuild from the fields, not the message
        return (type(self), (self.path, self.detail, self.field, self.line))


class UnitError(ValueError):
    """A quantity string whose number or unit cannot be parsed (raised inside validators)."""


class InfeasibleError(ArchsimError):
    """A design that cannot run the workload; sweeps record it as a row with the reason."""
