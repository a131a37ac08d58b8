"""The WeChat login as the user follows it: scan events in words, one QR block per code.

A puppet announces the login with ``scan`` events (Waiting with a QR code, then Scanned,
Confirmed, or Timeout / Cancel) and ends it with ``login``. ``LoginTracker`` turns them into
one clear block per new code — the terminal QR, its link and ``<data_dir>/login-qr.png`` —
and one line per step; it keeps the state for ``/healthz`` and writes it for
``lcbot wechat qr`` (``lcbot.login_file``). PuppetServer replays the last QR code to every
client that connects until someone logs in: a code already shown is not shown again, and
one older than a QR code lives is reported as expired, not as current.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

log = logging.getLogger("lcbot.wechaty")

QR_LIFETIME = 120.0  # seconds: WeChat's login QR codes expire after about two minutes

# wechaty-puppet's ScanStatus
CANCEL, WAITING, SCANNED, CONFIRMED, TIMEOUT = 1, 2, 3, 4, 5
STEPS = {
    CANCEL: "login cancelled on the phone; waiting for a new QR code",
    SCANNED: "QR code scanned; confirm the login on the phone",
    CONFIRMED: "login confirmed on the phone; logging in",
    TIMEOUT: "the QR code expired; waiting for a new one",
}


class LoginTracker:
    """Where the login stands: ``connecting``, ``awaiting_scan``, ``scanned``,
    ``logged_in``, ``logged_out`` or ``error`` (with a reason)."""

    def __init__(
        self,
        data_dir: Path,
        out: TextIO | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.data_dir = data_dir
        self.out = out
        self.now = now
        self.state = "connecting"
        self.since = now()
        self.qrcode: str | None = None
        self.user: str | None = None
        self.reason: str | None = None
        self.shown: dict[str, float] = {}  # QR code → when it was first seen
        previous = _previous_state(data_dir)
        if previous.get("qrcode") and isinstance(previous.get("since"), int | float):
            self.shown[previous["qrcode"]] = float(previous["since"])

    @property
    def png(self) -> Path:
        return self.data_dir / "login-qr.png"

    # --- events -----------------------------------------------------------------------------

    def connecting(self, reason: str | None = None) -> None:
        if self.state in ("awaiting_scan", "scanned") and reason is None:
            return  # still waiting for the same scan
        self._set("error" if reason else "connecting", reason=reason)

    def scan(self, status: int, qrcode: str | None) -> None:
        """One scan event of the puppet."""
        status = int(status)
        if status == WAITING and qrcode:
            first_seen = self.shown.setdefault(qrcode, self.now())
            if self.now() - first_seen > QR_LIFETIME:
                log.info("the puppet service repeated an expired QR code; waiting for a new one")
                self._set("awaiting_scan", qrcode=None)
                return
            if self.state == "awaiting_scan" and self.qrcode == qrcode:
                return  # the same code again (replayed on reconnect): shown already
            self._set("awaiting_scan", qrcode=qrcode, since=first_seen)
            self._show(qrcode, first_seen)
            return
        step = STEPS.get(status)
        if step is None:
            log.debug("scan event with status %s", status)
            return
        log.warning("WeChat login: %s", step)
        self._set("scanned" if status in (SCANNED, CONFIRMED) else "awaiting_scan", qrcode=None)

    def logged_in(self, user: str) -> None:
        self.shown.clear()
        self._set("logged_in", user=user)
        self.png.unlink(missing_ok=True)

    def logged_out(self) -> None:
        self._set("logged_out")

    # --- what others see --------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """For ``/healthz``: the state, since when (unix time), the link while one is current."""
        from lcbot.login_file import qr_url

        return {
            "state": self.state,
            "since": round(self.since, 3),
            "url": qr_url(self.qrcode) if self.qrcode else None,
            "reason": self.reason,
        }

    def _set(self, state: str, **fields: Any) -> None:
        if state != self.state:
            self.since = fields.pop("since", None) or self.now()
        else:
            fields.pop("since", None)
        self.state = state
        self.qrcode = fields.get("qrcode", self.qrcode if state == "awaiting_scan" else None)
        self.user = fields.get("user") if state == "logged_in" else None
        self.reason = fields.get("reason")
        self._write()

    def _write(self) -> None:
        from lcbot.login_file import qr_url, write_login_state

        try:
            write_login_state(
                self.data_dir,
                state=self.state,
                qrcode=self.qrcode,
                url=qr_url(self.qrcode) if self.qrcode else None,
                since=self.since,
                expires=self.since + QR_LIFETIME if self.qrcode else None,
                user=self.user,
                reason=self.reason,
            )
        except OSError as exc:
            log.warning("could not write the login state: %s", exc)

    def _show(self, qrcode: str, first_seen: float) -> None:
        from lcbot.login_file import qr_url
        from lcbot.qr import save_png, terminal_block

        minutes = max(1, round((first_seen + QR_LIFETIME - self.now()) / 60))
        try:
            save_png(qrcode, self.png)
            png = f"or open {self.png}"
        except (OSError, ValueError) as exc:
            png = f"(no PNG: {exc})"
        url = qr_url(qrcode)
        out = self.out or sys.stderr
        out.write(
            f"\nScan with WeChat to log in to lcbot (expires in ~{minutes} min):\n"
            f"{terminal_block(qrcode)}\n{url}\n{png}\n\n"
        )
        out.flush()
        log.warning("WeChat login: waiting for the scan of the QR code %s", url)


def _previous_state(data_dir: Path) -> dict[str, Any]:
    """The login file of an earlier run, whatever became of its process."""
    import json

    try:
        value = json.loads((data_dir / "wechat-login.json").read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
