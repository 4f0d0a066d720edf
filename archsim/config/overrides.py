"""Dotted field paths into raw (unvalidated) config mappings, for sweeps.

Sweep points are built by changing the raw mapping and validating it again, so a swept value gets
exactly the checks a value written in the file gets.
"""

from __future__ import annotations

import copy
from typing import Any

from archsim.errors import ArchsimError


def _step(node: Any, part: str, path: str) -> tuple[Any, str | int]:
    if isinstance(node, dict):
        if part not in node:
            keys = ", ".join(sorted(map(str, node))) or "none"
            raise ArchsimError(f"'{path}': no field '{part}' here (fields: {keys})")
        return node, part
    if isinstance(node, list):
        if part.isdigit() and int(part) < len(node):
            return node, int(part)
        for index, item in enumerate(node):
            if isinstance(item, dict) and item.get("name") == part:
                return node, index
        names = [str(i.get("name")) for i in node if isinstance(i, dict) and "name" in i]
        raise ArchsimError(
            f"'{path}': '{part}' is neither an index below {len(node)} nor a name "
            f"({', '.join(names) or 'no named entries'})"
        )
    raise ArchsimError(f"'{path}': '{part}' reaches into a value, not a mapping or list")


def set_path(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Return a copy of ``raw`` with the field at dotted ``path`` set to ``value``.

    List entries are addressed by index (``devices.0``) or by their ``name`` (``devices.npu``).
    Every segment but the last must exist; the last may be a new key of an existing mapping (it is
    then checked like any other key when the result is validated).
    """
    result = copy.deepcopy(raw)
    parts = path.split(".")
    node: Any = result
    for part in parts[:-1]:
        container, key = _step(node, part, path)
        node = container[key]
    last = parts[-1]
    if isinstance(node, list):
        container, key = _step(node, last, path)
        container[key] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ArchsimError(f"'{path}': '{last}' reaches into a value, not a mapping or list")
    return result
