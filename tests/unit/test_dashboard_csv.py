"""CSV exports: a cell a spreadsheet would run as a formula (OWASP CSV injection) is
prefixed with a single quote; other values are written as they are."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest

from teamnl_dashboard.api import csv_response


def _rows(rows: list[dict[str, object]]) -> list[dict[str, str]]:
    body = csv_response(rows, "t").body
    return list(csv.DictReader(io.StringIO(bytes(body).decode(), newline="")))


@pytest.mark.parametrize(
    "text",
    ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"],
)
def test_a_cell_that_starts_a_formula_becomes_text(text: str) -> None:
    assert _rows([{"title": text}]) == [{"title": "'" + text}]


def test_lists_are_neutralised_after_joining_and_other_values_are_left_alone() -> None:
    [row] = _rows(
        [{"tags": ["=cmd", "b"], "n": -5, "title": "Trade mission", "on": date(2019, 4, 8)}]
    )
    assert row == {"tags": "'=cmd;b", "n": "-5", "title": "Trade mission", "on": "2019-04-08"}
