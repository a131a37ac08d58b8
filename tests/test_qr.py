"""lcbot.qr: the terminal rendering decodes back to segno's matrix; the PNG is a PNG."""

from __future__ import annotations

import stat
import struct

import pytest
import segno

from lcbot.qr import BORDER, OFF, ON, PNG_SCALE, matrix, save_png, terminal_block

LOGIN = "https://login.weixin.qq.com/l/IcRYa5Xx8g=="
TOP = {" ": False, "▀": True, "▄": False, "█": True}
BOTTOM = {" ": False, "▀": False, "▄": True, "█": True}


def decode_block(block: str) -> list[list[bool]]:
    """The module rows a terminal block shows (two per line)."""
    rows = []
    for line in block.split("\n"):
        assert line.startswith(ON) and line.endswith(OFF), repr(line)
        cells = line[len(ON) : -len(OFF)]
        rows.append([TOP[c] for c in cells])
        rows.append([BOTTOM[c] for c in cells])
    return rows


@pytest.mark.parametrize("data", [LOGIN, "x", "微信 " * 40])
def test_terminal_block_shows_exactly_the_code(data):
    code = segno.make(data, micro=False)
    expected = [[bool(m) for m in row] for row in code.matrix_iter(scale=1, border=BORDER)]
    shown = decode_block(terminal_block(data))
    side = code.symbol_size(scale=1, border=BORDER)[0]
    assert len(expected) == side
    assert shown[:side] == expected
    assert all(not m for row in shown[side:] for m in row)  # padding is quiet zone
    assert len(terminal_block(data).split("\n")) == (side + 1) // 2


def test_quiet_zone_is_four_light_modules():
    rows = matrix(LOGIN)
    for row in rows[:BORDER] + rows[-BORDER:]:
        assert not any(row)
    for row in rows:
        assert not any(row[:BORDER]) and not any(row[-BORDER:])
    assert any(rows[BORDER])  # the finder pattern starts right after it


def test_png_is_a_png_of_the_code_private_and_replaced(tmp_path):
    path = tmp_path / "login-qr.png"
    path.write_bytes(b"old")
    path.chmod(0o644)
    save_png(LOGIN, path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # IHDR
    side = len(matrix(LOGIN))
    assert width == height == side * PNG_SCALE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["login-qr.png"]  # no temp file left
