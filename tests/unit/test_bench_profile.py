"""The bench's reading of py-spy flame graphs (bench/profile.py)."""

from __future__ import annotations

from pathlib import Path

from bench.profile import shares_of


def _frame(title: bytes, y: int, x: int, w: int, total: int) -> bytes:
    share = f"{100 * w / total:.2f}".encode()
    return (
        b"<g><title>" + title + b" (" + str(w).encode() + b" samples, " + share + b"%)</title>"
        b'<rect x="0%" y="' + str(y).encode() + b'" width="1%" height="15" fill="rgb(0,0,0)"'
        b' fg:x="' + str(x).encode() + b'" fg:w="' + str(w).encode() + b'"/></g>'
    )


def test_a_flame_graph_with_a_frame_name_that_is_not_utf8_is_read(tmp_path: Path) -> None:
    """Proves: a frame py-spy misread, named with bytes that are not UTF-8 (as written in
    a full bench run, which then stopped before its report), counts as a part of its own;
    the other frames' shares are read as usual."""
    svg = tmp_path / "profile.svg"
    svg.write_bytes(
        b"<svg>"
        + _frame(b"all", 52, 0, 10, 10)
        + _frame(b"handle (teamnl_shared/inbox.py:12)", 68, 0, 9, 10)
        + _frame(b"\xfd\x96\xa0\xb0 (\xef\xbf\xbd:192112992)", 68, 9, 1, 10)
        + b"</svg>"
    )
    read = shares_of(svg)
    assert read["samples"] == 10
    assert read["shares"]["teamnl code"] == 0.9
    assert sum(read["shares"].values()) == 1.0
