"""Session fixes: keep the WeChat login across connections and survive what puppets send.

On every wechaty-puppet 1.x puppet, Stop logs the account out — by design
(wechaty/puppet#184): wechat4u even calls WeChat's logout and deletes the saved session.
python-wechaty sends Stop before every Start and on ``stop()`` (and ``Wechaty.restart()``
is ``stop()`` + ``start()``), so every connect, reconnect and exit logged the account out
(wechaty/wechaty#2170 shows the same loop: "logout … reason: PuppetService stop()").
Here a connection is: Start (no-op on a started puppet), then the event stream; closing it
closes the channel and never sends Stop. Reconnecting is the caller's job (lcbot's
supervisor).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import socket
import sys
import types
from typing import Any

log = logging.getLogger("lcbot.wechaty")


def apply() -> None:
    """The fixes to ``wechaty_puppet_service`` (imported now)."""
    _patch_puppet_service()
    _patch_error_payload()
    _patch_room_invitation_payload()


def _patch_puppet_service() -> None:
    import wechaty_puppet_service.puppet as module

    cls: Any = module.PuppetService
    if getattr(cls.start, "_lcbot_compat", False):
        return
    listen_for_event = cls._listen_for_event

    @functools.wraps(cls.start)
    async def start(self: Any) -> None:
        self._lcbot_closed = False
        # upstream looks the endpoint up and probes it with blocking calls (the lookup
        # without a timeout) on the event loop: do both in a thread
        if not self.options.end_point:
            self.options.end_point = await asyncio.to_thread(endpoint_for_token, self.options.token)
        await asyncio.to_thread(reachable, self.options.end_point)
        self._init_puppet()
        await self.puppet_stub.start()  # Start only: no Stop before it (see above)
        await self._listen_for_event()

    @functools.wraps(listen_for_event)
    async def _listen_for_event(self: Any) -> None:
        try:
            await listen_for_event(self)
        except Exception:
            if getattr(self, "_lcbot_closed", False):
                return  # the channel was closed by stop(): the end of the stream is expected
            raise

    @functools.wraps(cls.stop)
    async def stop(self: Any) -> None:
        # close the channel; no Stop RPC, which would log the account out
        self._lcbot_closed = True
        self._event_stream.remove_all_listeners()
        self._puppet_stub = None
        if self.channel:
            self.channel.close()
            self.channel = None

    module.ping_endpoint = _reachable_already_checked
    for fixed in (start, stop, _listen_for_event):
        fixed._lcbot_compat = True  # type: ignore[attr-defined]
    cls.start, cls.stop, cls._listen_for_event = start, stop, _listen_for_event


def reachable(endpoint: str, timeout: float = 5) -> None:
    """Raise OSError unless a TCP connection to ``host:port`` can be opened."""
    host, _, port = endpoint.rpartition(":")
    with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout):
        pass


def endpoint_for_token(token: str | None) -> str:
    """The endpoint a token provider registered (Wechaty's service discovery)."""
    import requests

    url = f"https://api.chatie.io/v0/hosties/{token}"
    try:
        response = requests.get(url, timeout=10)
        data = response.json() if response.status_code == 200 else {}
    except (requests.RequestException, ValueError) as exc:  # its text holds the URL: the token
        raise ConnectionError(f"service discovery failed ({type(exc).__name__})") from None
    if not data.get("ip") or data["ip"] == "0.0.0.0" or "port" not in data:
        raise ConnectionError("no endpoint is registered for this token (service discovery)")
    return f"{data['ip']}:{data['port']}"


def _reachable_already_checked(end_point: str) -> bool:
    return True


def _patch_error_payload() -> None:
    # python-wechaty #424: wechaty-puppet 1.x sends error events as {"gerror": "..."}, but
    # the reader builds EventErrorPayload(**payload), which requires `data`: ValueError,
    # the stream reader dies and the connection is dropped. Accept both shapes.
    import wechaty_puppet_service.puppet as module

    real = getattr(module.EventErrorPayload, "_lcbot_real", module.EventErrorPayload)

    def event_error_payload(**payload: Any) -> Any:
        data = payload.get("data") or payload.get("gerror") or json.dumps(payload)
        return real(data=data if isinstance(data, str) else json.dumps(data))

    event_error_payload._lcbot_real = real  # type: ignore[attr-defined]
    module.EventErrorPayload = event_error_payload


def _patch_room_invitation_payload() -> None:
    # No upstream issue found: room_invitation_payload() rebuilds the gRPC response from
    # `response.to_dict()`, whose keys are camelCase ("inviterId"), so every group
    # invitation fails with TypeError. The response already is a RoomInvitationPayload.
    import wechaty_puppet_service.puppet as module

    cls: Any = module.PuppetService
    if getattr(cls.room_invitation_payload, "_lcbot_compat", False):
        return

    async def room_invitation_payload(
        self: Any, room_invitation_id: str, payload: Any = None
    ) -> Any:
        return await self.puppet_stub.room_invitation_payload(
            id=room_invitation_id, payload=payload
        )

    room_invitation_payload._lcbot_compat = True  # type: ignore[attr-defined]
    cls.room_invitation_payload = room_invitation_payload


def patch_wechaty_module(module: types.ModuleType) -> None:
    """Fixes to ``wechaty.wechaty`` and ``wechaty.plugin`` (run when they are imported)."""
    wechaty_cls: Any = module.Wechaty
    if getattr(wechaty_cls.init_puppet_event_bridge, "_lcbot_compat", False):
        return

    # python-wechaty prints its own ASCII QR code on stdout for every scan event; lcbot
    # shows the code itself (lcbot.qr), once, with the link and a PNG.
    module.qr_terminal = lambda *args, **kwargs: None

    # No upstream issue found: the event bridge handles 'login' once per bridge
    # (`once_event`), so after a logout and a new login on the same connection the bot's
    # 'login' event never fires and the bot stays "down". Forget the login on logout.
    bridge = wechaty_cls.init_puppet_event_bridge

    @functools.wraps(bridge)
    async def init_puppet_event_bridge(self: Any, puppet: Any) -> None:
        await bridge(self, puppet)
        once = _once_events(puppet)
        if once is not None:
            puppet.on("logout", lambda *_: once.discard("login"))

    init_puppet_event_bridge._lcbot_compat = True  # type: ignore[attr-defined]
    wechaty_cls.init_puppet_event_bridge = init_puppet_event_bridge

    manager_cls: Any = sys.modules["wechaty.plugin"].WechatyPluginManager

    # No upstream issue found: after a reconnect, python-wechaty handles the new
    # connection's login by starting its plugin manager again, whose scheduler then raises
    # "Scheduler is already running" ("internal error" in the log), so the bot's 'login'
    # event never fires. Start the plugin manager once.
    manager_start = manager_cls.start

    @functools.wraps(manager_start)
    async def start_once(self: Any) -> None:
        if not getattr(self, "_lcbot_started", False):
            await manager_start(self)
            self._lcbot_started = True

    # python-wechaty-getting-started #46 ("Wechaty - ERROR - internal error <>" after each
    # scan): the plugin manager asserts the scan status is a str, but it is a ScanStatus;
    # the AssertionError (empty message) reaches the bridge's error listener. With no
    # python-wechaty plugin registered (lcbot registers none) there is nothing to emit.
    emit_events = manager_cls.emit_events

    @functools.wraps(emit_events)
    async def emit_to_plugins(self: Any, event_name: str, *args: Any, **kwargs: Any) -> None:
        if getattr(self, "_plugins", None):
            await emit_events(self, event_name, *args, **kwargs)

    manager_cls.start, manager_cls.emit_events = start_once, emit_to_plugins


def _once_events(puppet: Any) -> set[str] | None:
    """The bridge's ``once_event`` set, read from its 'login' listener's closure."""
    with contextlib.suppress(Exception):
        for listener in puppet._event_stream.listeners("login"):
            code = listener.__code__
            if "once_event" in code.co_freevars:
                cell = listener.__closure__[code.co_freevars.index("once_event")]
                return cell.cell_contents
    log.debug("python-wechaty's login bridge not found: a second login may be ignored")
    return None
