"""HTML to PDF with headless Chromium (``chromium --headless --print-to-pdf``).

The report's HTML is written to a private temporary folder and printed from there, with a
throw-away browser profile; nothing is fetched from the network (the page carries its own
styles). Chromium is a Debian package (scripts/bootstrap.sh, the dashboard's Dockerfile).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from pathlib import Path

DEFAULT_TIMEOUT_SECONDS = 60.0
# --no-sandbox: Chromium's sandbox needs user namespaces that containers and root shells
# lack; the page printed is our own, escaped HTML with no scripts, opened from a file.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-pdf-header-footer",
    "--run-all-compositor-stages-before-draw",
)


class PdfFailed(RuntimeError):
    """Chromium is missing, failed or took too long."""


# Each print starts a whole browser (some 200 MB): at most this many at once per process.
_PRINTING = asyncio.Semaphore(2)


async def html_to_pdf(
    html: str, *, browser: str = "chromium", timeout: float = DEFAULT_TIMEOUT_SECONDS
) -> bytes:
    with tempfile.TemporaryDirectory(prefix="teamnl-pdf-") as folder:
        page, output = Path(folder) / "report.html", Path(folder) / "report.pdf"
        page.write_text(html, encoding="utf-8")
        command = [
            browser,
            *FLAGS,
            f"--user-data-dir={Path(folder) / 'profile'}",
            f"--print-to-pdf={output}",
            page.as_uri(),
        ]
        async with _PRINTING:
            await _run(command, timeout)
        if not output.is_file() or output.stat().st_size == 0:
            raise PdfFailed("chromium produced no PDF")
        return output.read_bytes()


async def _run(command: list[str], timeout: float) -> None:
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its helper processes go with it on a timeout
        )
    except FileNotFoundError as missing:
        raise PdfFailed(f"{command[0]} is not installed") from missing
    try:
        _, errors = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        raise PdfFailed(f"chromium took longer than {timeout:.0f} s") from None
    if process.returncode != 0:
        raise PdfFailed(f"chromium failed ({process.returncode}): {errors.decode()[-500:]}")
