"""QR codes for the WeChat login: a compact terminal rendering and a PNG file (segno).

``terminal_block`` draws two module rows per text line with half blocks, black on an
explicit white background (ANSI colours), so the code reads the same on dark and light
terminals; the quiet zone is the standard four modules.
"""

from __future__ import annotations

import io
from pathlib import Path

from lcbot.private import write_private

BORDER = 4  # modules of quiet zone around the code (ISO/IEC 18004)
PNG_SCALE = 8  # pixels per module in the PNG
# Black foreground on bright white background, and back to the terminal's colours.
ON, OFF = "\x1b[30;107m", "\x1b[0m"
# (top dark, bottom dark) → character drawn in the foreground (dark) colour
HALVES = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}


def matrix(data: str) -> list[list[bool]]:
    """The modules of ``data``'s QR code (True = dark), quiet zone included."""
    import segno

    code = segno.make(data, micro=False)
    return [[bool(m) for m in row] for row in code.matrix_iter(scale=1, border=BORDER)]


def terminal_block(data: str) -> str:
    """``data`` as a QR code for a terminal: one line per two module rows, no trailing
    newline; every line sets its own colours and resets them at its end."""
    rows = matrix(data)
    if len(rows) % 2:
        rows.append([False] * len(rows[0]))  # light padding row (more quiet zone)
    lines = []
    for top, bottom in zip(rows[0::2], rows[1::2], strict=True):
        cells = "".join(HALVES[pair] for pair in zip(top, bottom, strict=True))
        lines.append(f"{ON}{cells}{OFF}")
    return "\n".join(lines)


def save_png(data: str, path: Path) -> None:
    """Write ``data``'s QR code as a PNG at ``path``: mode 0600, replaced atomically (a
    reader sees the old image or the new one, never a part)."""
    import segno

    buffer = io.BytesIO()
    segno.make(data, micro=False).save(buffer, kind="png", scale=PNG_SCALE, border=BORDER)
    write_private(path, buffer.getvalue())
