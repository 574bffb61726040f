"""The progress report's pure parts: the reading window, the letter's Werkplaats targets,
and printing HTML to PDF with the system's headless Chromium."""

from __future__ import annotations

from datetime import date

import pytest

from teamnl_dashboard.initiatives import werkplaats_target, window
from teamnl_dashboard.pdf import PdfFailed, html_to_pdf
from teamnl_dashboard.period import Period


def test_the_window_ends_at_the_period_or_the_as_of_date_whichever_comes_first() -> None:
    assert window(Period.year(2018), None) == (date(2018, 1, 1), date(2018, 12, 31))
    assert window(Period.programme(), date(2018, 11, 30)) == (date(2017, 1, 1), date(2018, 11, 30))
    assert window(Period.year(2018), date(2020, 1, 1))[1] == date(2018, 12, 31)
    first, last = window(Period.year(2019), date(2018, 6, 1))
    assert last < first  # nothing can fall in it


def test_the_werkplaats_target_is_20_in_2019_then_30_and_none_before() -> None:
    targets = {2019: 20}
    assert [werkplaats_target(y, targets, 30) for y in (2017, 2018, 2019, 2020, 2021)] == [
        None,
        None,
        20,
        30,
        30,
    ]
    assert werkplaats_target(2018, {}, 30) == 30  # no listed years: the yearly target


async def test_chromium_prints_html_to_a_pdf() -> None:
    """Chromium is a Debian package that scripts/bootstrap.sh installs."""
    pdf = await html_to_pdf("<!doctype html><h1>Voortgangsrapportage</h1>")
    assert pdf.startswith(b"%PDF-") and len(pdf) > 500


@pytest.mark.parametrize("browser", ["/nonexistent/chromium", "false"])
async def test_a_missing_or_failing_browser_is_a_pdf_failure(browser: str) -> None:
    with pytest.raises(PdfFailed):
        await html_to_pdf("<p>x</p>", browser=browser)
