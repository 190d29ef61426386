"""Plain-text tables and durations the way `kubectl get` prints them.

Upper-case headers, columns left-aligned and separated by three spaces, no
borders, `<none>` for an empty cell: output an operator already reads fluently
and can `awk`.
"""

from __future__ import annotations

from collections.abc import Sequence

NONE = "<none>"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    if value is None or value == "" or value == []:
        return NONE
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def human_duration(seconds: float | None) -> str:
    """kubectl's AGE style: 450ms, 12s, 3m12s, 2h5m, 3d4h; `<never>` for None."""
    if seconds is None:
        return "<never>"
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60}s" if whole % 60 else f"{whole // 60}m"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60}m" if whole % 3600 // 60 else f"{whole // 3600}h"
    return f"{whole // 86400}d{whole % 86400 // 3600}h" if whole % 86400 // 3600 else f"{whole // 86400}d"
