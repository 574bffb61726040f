"""Where the services' log lines go: a coloured console (``teamnl run``) or files (``up``).

On the console each line is prefixed with its service in that service's colour, and the
services' JSON log lines are shown as ``time LEVEL logger: message key=value``. The files
keep the JSON lines unchanged, for tools.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.text import Text

from .config import BY_NAME

_SHOWN_ELSEWHERE = {
    "timestamp",
    "level",
    "logger",
    "message",
    "service",
    "trace_id",
    "span_id",
    "taskName",
}
_LEVEL_STYLE = {"WARNING": "yellow", "ERROR": "bold red", "CRITICAL": "bold red"}
PREFIX_WIDTH = max(len(name) for name in BY_NAME) + 1


def readable(line: str) -> Text:
    """A JSON log line as ``time LEVEL logger: message k=v``; any other line as it is."""
    try:
        record: Any = json.loads(line)
    except ValueError:
        return Text(line)
    if not isinstance(record, dict) or "message" not in record:
        return Text(line)
    level = str(record.get("level", "")).upper()
    text = Text()
    text.append(str(record.get("timestamp", ""))[11:19] + " ", style="dim")
    text.append(f"{level:<7} ", style=_LEVEL_STYLE.get(level, "dim"))
    text.append(f"{record.get('logger', '')}: ", style="dim")
    text.append(str(record["message"]), style=_LEVEL_STYLE.get(level, ""))
    extra = {k: v for k, v in record.items() if k not in _SHOWN_ELSEWHERE and v not in ("", None)}
    if extra:
        text.append(" " + " ".join(f"{k}={_short(v)}" for k, v in extra.items()), style="dim")
    return text


def _short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class ConsoleSink:
    """Prefixed, coloured lines on a Rich console (the foreground ``teamnl run``)."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def _prefix(self, service: str) -> Text:
        spec = BY_NAME.get(service)
        return Text(f"{service:<{PREFIX_WIDTH}}| ", style=spec.colour if spec else "bold")

    def line(self, service: str, text: str) -> None:
        self.console.print(self._prefix(service) + readable(text), soft_wrap=True, highlight=False)

    def notice(self, service: str, text: str, *, error: bool = False) -> None:
        style = "bold white on red" if error else "bold"
        self.console.print(
            self._prefix(service) + Text(f"[teamnl] {text}", style=style),
            soft_wrap=True,
            highlight=False,
        )


class FileSink:
    """One log file per service plus ``supervisor.log`` (the detached ``teamnl up``)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, TextIO] = {}

    def _file(self, name: str) -> TextIO:
        if name not in self._files:
            self._files[name] = (self.log_dir / f"{name}.log").open("a", buffering=1)
        return self._files[name]

    def line(self, service: str, text: str) -> None:
        self._file(service).write(text + "\n")

    def notice(self, service: str, text: str, *, error: bool = False) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        message = f"{stamp} {'ERROR' if error else 'INFO'} {service}: {text}\n"
        self._file("supervisor").write(message)
        self._file(service).write(f"[teamnl] {message}")

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
