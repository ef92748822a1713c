"""Render a comparison `Table` as markdown, csv, latex or json (the formats of tools/compare.py)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from etcore.errors import UserInputError
from etcore.formats import COMPARE_SCHEMA
from reporting.stats import Stat
from reporting.table import Column, Table

FORMATS = ("markdown", "csv", "latex", "json")


def _number(stat: Stat, decimals: int, plus_minus: str = " ± ") -> str:
    sign = "+" if stat.signed else ""
    text = f"{round(stat.mean, decimals) + 0.0:{sign}.{decimals}f}"  # + 0.0: no "-0.0"
    if stat.std is not None:
        text += f"{plus_minus}{stat.std:.{decimals}f}"
    return text


def _cell_text(row: dict, column: Column, plus_minus: str = " ± ") -> str:
    value = row.get(column.key)
    if value is None:
        return ""
    if isinstance(value, Stat):
        return _number(value, column.decimals, plus_minus)
    return str(value)


def _markdown(table: Table) -> str:
    lines = [
        "| " + " | ".join(c.header for c in table.columns) + " |",
        "|" + "|".join("---:" if c.numeric else ":---" for c in table.columns) + "|",
    ]
    for row in table.rows:
        cells = [_cell_text(row, c).replace("|", "\\|") or "–" for c in table.columns]
        lines.append("| " + " | ".join(cells) + " |")
    if table.notes:
        lines.append("")
        lines += [f"Note: {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def _csv(table: Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = []
    for column in table.columns:
        header += [column.key, f"{column.key}_std"] if column.numeric else [column.key]
    writer.writerow(header)
    for row in table.rows:
        cells: list[Any] = []
        for column in table.columns:
            value = row.get(column.key)
            if column.numeric:
                cells += (
                    ["", ""]
                    if value is None
                    else [round(value.mean, 4), "" if value.std is None else round(value.std, 4)]
                )
            else:
                cells.append("" if value is None else value)
        writer.writerow(cells)
    return buffer.getvalue()


_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _latex_text(text: str) -> str:
    escaped = "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)
    return escaped.replace("Δ", r"$\Delta$").replace("−", "$-$").replace("±", r"$\pm$").replace("–", "--")


def _latex(table: Table) -> str:
    spec = "".join("r" if c.numeric else "l" for c in table.columns)
    lines = [
        f"\\begin{{tabular}}{{{spec}}}",
        r"\hline",
        " & ".join(_latex_text(c.header) for c in table.columns) + r" \\",
        r"\hline",
    ]
    for row in table.rows:
        lines.append(" & ".join(_latex_text(_cell_text(row, c)) for c in table.columns) + r" \\")
    lines += [r"\hline", r"\end{tabular}"]
    lines += [f"% note: {' '.join(note.split())}" for note in table.notes]
    return "\n".join(lines) + "\n"


def _json(table: Table) -> str:
    def cell(value: Any) -> Any:
        if isinstance(value, Stat):
            return {"mean": value.mean, "std": value.std, "n": value.n}
        return value

    document = {
        "schema": COMPARE_SCHEMA,
        "columns": [{"key": c.key, "header": c.header} for c in table.columns],
        "rows": [{c.key: cell(row.get(c.key)) for c in table.columns} for row in table.rows],
        "notes": table.notes,
    }
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def render(table: Table, fmt: str = "markdown") -> str:
    """The table as markdown (notes below), csv (no notes), latex (notes as % comments) or json."""
    renderers = {"markdown": _markdown, "csv": _csv, "latex": _latex, "json": _json}
    if fmt not in renderers:
        raise UserInputError(f"--format {fmt!r} is unknown: use one of {', '.join(FORMATS)}")
    return renderers[fmt](table)
