"""Small pieces of the report's HTML: numbers, intervals and tables, escaped."""

from __future__ import annotations

import html
from typing import Any

from analysis.results import Interval, Rate


def fmt(value: Any, digits: int = 3) -> str:
    """A value as the report prints it: `—` for a missing one, yes/no, 3 decimals."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"
    return html.escape(str(value))


def ci_text(pair: Interval) -> str:
    return f"[{fmt(pair[0])}, {fmt(pair[1])}]"


def table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def rates_rows(rates: dict[str, Rate]) -> list[list[str]]:
    return [[name, fmt(r.p), ci_text(r.ci), str(r.n)] for name, r in rates.items()]


def pct(value: float) -> str:
    return f"{100 * value:.2f}%"
