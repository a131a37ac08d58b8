"""The running bot's WeChat login state, in ``<data_dir>/wechat-login.json``.

The WeChat transport writes it (``write_login_state``) whenever the state changes; the
CLI reads it (``read_login_state``: ``lcbot wechat qr``, ``lcbot wechat doctor``). The file
is exactly this JSON object, mode 0600, replaced atomically::

    {"state": "connecting" | "awaiting_scan" | "scanned" | "logged_in" | "logged_out" | "error",
     "qrcode": str | null, "url": str | null, "since": float, "expires": float | null,
     "user": str | null, "reason": str | null, "pid": int}

``since`` is the unix time the state began, ``expires`` when the QR code stops working,
``pid`` the bot's process. The login QR as an image is ``<data_dir>/login-qr.png``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from lcbot.private import write_private

LOGIN_FILE = "wechat-login.json"
QR_PNG = "login-qr.png"
STATES = ("connecting", "awaiting_scan", "scanned", "logged_in", "logged_out", "error")
FIELDS = ("state", "qrcode", "url", "since", "expires", "user", "reason", "pid")
QR_URL = "https://wechaty.js.org/qrcode/"


def qr_url(qrcode: str) -> str:
    """The web page showing ``qrcode`` as an image (as python-wechaty prints it)."""
    return QR_URL + quote(qrcode, safe="")


def write_login_state(data_dir: Path, **fields: Any) -> None:
    """Replace the state file. ``state`` is required; ``since`` defaults to now, ``pid`` to
    this process, ``url`` to ``qr_url(qrcode)`` when there is a code, the rest to null."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise TypeError(f"unknown login state field(s): {', '.join(sorted(unknown))}")
    if fields.get("state") not in STATES:
        raise ValueError(f"login state must be one of {', '.join(STATES)}: {fields.get('state')!r}")
    record: dict[str, Any] = dict.fromkeys(FIELDS)
    record.update(since=time.time(), pid=os.getpid())
    record.update(fields)
    if record["qrcode"] and not record["url"]:
        record["url"] = qr_url(record["qrcode"])
    text = json.dumps(record, ensure_ascii=False) + "\n"
    write_private(Path(data_dir) / LOGIN_FILE, text.encode("utf-8"))


def read_login_state(data_dir: Path) -> dict[str, Any] | None:
    """The state of the running bot, or None: no file, an unreadable or malformed one, or
    one left by a process that is gone (the state of a dead bot is not current)."""
    try:
        record = json.loads((Path(data_dir) / LOGIN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or set(record) != set(FIELDS):
        return None
    if record["state"] not in STATES or not _alive(record["pid"]):
        return None
    return record


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "?"


def describe(state: dict[str, Any] | None, config_path: str) -> str:
    """One line saying the login state (anything but a code to scan)."""
    if state is None:
        return f"no bot is running for {config_path}"
    since = _when(state["since"])
    reason = f": {state['reason']}" if state["reason"] else ""
    kind = state["state"]
    if kind == "logged_in":
        return f"logged in as {state['user'] or '?'} since {since}"
    if kind == "awaiting_scan":  # a code, but past its expiry
        return f"the login QR code expired at {_when(state['expires'])}; the bot fetches a new one"
    if kind == "scanned":
        return f"QR code scanned at {since}: confirm the login on the phone"
    if kind == "connecting":
        return f"connecting to the puppet service since {since} (no QR code yet){reason}"
    if kind == "logged_out":
        return f"logged out since {since}{reason}"
    return f"WeChat error since {since}{reason}"


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    except OSError:
        return False
    return True
