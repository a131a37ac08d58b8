"""``lcbot wechat doctor``: can lcbot use its Wechaty puppet service, and if not, why.

It reads the endpoint and token as the WeChat transport does, then checks one step at a
time, one line each (``ok`` or ``FAIL`` with the fix): endpoint, token variable, TCP
connect, a plain HTTP/2 handshake (a TLS server is named as such), the token (the
side-effect-free ``Version`` RPC), and the login state. It never calls ``Start``, ``Stop``
or ``Logout`` (``Stop`` logs the account out on real puppets). Exit 0 when lcbot can
connect, 1 otherwise; bad configuration is exit 2 as everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from lcbot.config import Config
from lcbot.login_file import describe, read_login_state
from lcbot.transports.wechaty import ENDPOINT_ENV, WechatySettings

NO_TLS = "WECHATY_PUPPET_SERVICE_NO_TLS_INSECURE_SERVER=true"
GATEWAY = "npx -y wechaty@1.20.2 gateway"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS_FRAME = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # empty SETTINGS, stream 0
LOGIN_WAIT = 1.0  # seconds to wait for a login event after the stream's first heartbeat


@dataclass
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def loopback(self) -> bool:
        return self.host in ("localhost", "::1") or self.host.startswith("127.")


def parse_endpoint(text: str) -> Endpoint | None:
    """``host:port`` or ``[v6]:port`` (a leading ``http://`` is dropped, as python-wechaty
    does); None when it is not that."""
    text = text.strip().removeprefix("http://").removeprefix("https://").rstrip("/")
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return Endpoint(host, int(port))


def handshake(endpoint: Endpoint, timeout: float) -> str:
    """``"h2"`` when the server answers the HTTP/2 preface with a SETTINGS frame,
    ``"tls"`` when it speaks TLS instead, else a short description of what it did."""
    with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout) as sock:
        sock.sendall(PREFACE + SETTINGS_FRAME)
        try:
            head = _read(sock, 9)
        except TimeoutError:
            return "no answer to the HTTP/2 preface"
    if len(head) == 9 and head[3] == 0x04:
        return "h2"
    if head[:1] in (b"\x15", b"\x16") or _speaks_tls(endpoint, timeout):
        return "tls"  # a TLS alert or handshake record, or a TLS server that hung up
    if head.startswith(b"HTTP/"):
        return "an HTTP/1 server, not gRPC"
    return "the server closed the connection" if not head else f"unexpected answer {head[:9]!r}"


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _speaks_tls(endpoint: Endpoint, timeout: float) -> bool:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only: does it speak TLS at all
    try:
        with (
            socket.create_connection((endpoint.host, endpoint.port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname="insecure"),
        ):
            return True
    except (OSError, ssl.SSLError):
        return False


async def _version(endpoint: Endpoint, token: str, timeout: float) -> str:
    """The puppet's version through the Version RPC, authenticated as python-wechaty does
    (the token as the HTTP/2 ``:authority``)."""
    from grpclib.client import Channel
    from wechaty_grpc.wechaty import PuppetStub

    channel = Channel(host=endpoint.host, port=endpoint.port)
    channel._authority = token  # as wechaty_puppet_service does
    try:
        return (await asyncio.wait_for(PuppetStub(channel).version(), timeout)).version
    finally:
        channel.close()


async def _service_login(endpoint: Endpoint, token: str, timeout: float) -> str:
    """What the service says about the login, from its event stream (opened briefly, then
    cancelled; a service allows one stream, so a connected bot makes this ``busy``)."""
    from grpclib.client import Channel
    from grpclib.const import Status
    from grpclib.exceptions import GRPCError
    from wechaty_grpc.wechaty import PuppetStub
    from wechaty_grpc.wechaty.puppet import EventType

    channel = Channel(host=endpoint.host, port=endpoint.port)
    channel._authority = token
    events = PuppetStub(channel).event()
    try:
        first = await asyncio.wait_for(events.__anext__(), timeout)
        if first.type == EventType.EVENT_TYPE_LOGIN:
            return "logged in as " + json.loads(first.payload).get("contactId", "?")
        with contextlib.suppress(asyncio.TimeoutError, StopAsyncIteration):
            event = await asyncio.wait_for(events.__anext__(), LOGIN_WAIT)
            if event.type == EventType.EVENT_TYPE_LOGIN:
                return "logged in as " + json.loads(event.payload).get("contactId", "?")
        return "not logged in"
    except GRPCError as exc:
        if exc.status == Status.ALREADY_EXISTS:
            return "busy"
        raise
    finally:
        with contextlib.suppress(Exception):
            await events.aclose()
        channel.close()


class Doctor:
    """The checks, in order; each prints its line through ``echo``."""

    def __init__(self, cfg: Config, timeout: float, echo: Callable[[str], None]) -> None:
        self.cfg = cfg
        self.timeout = timeout
        self.echo = echo
        self.settings = WechatySettings.from_settings(
            cfg.settings["wechaty"], cfg.settings["security"]
        )
        self.endpoint: Endpoint | None = None

    def ok(self, what: str) -> None:
        self.echo(f"ok    {what}")

    def fail(self, what: str, fix: str) -> bool:
        self.echo(f"FAIL  {what}")
        self.echo(f"      fix: {fix}")
        return False

    def run(self) -> int:
        connects = self.check_connection()
        self.check_login(connects)
        self.print_gateway()
        return 0 if connects else 1

    def check_connection(self) -> bool:
        s = self.settings
        where = f"${ENDPOINT_ENV} or [wechaty] endpoint in {self.cfg.path}"
        if not s.endpoint:
            return self.fail(
                "endpoint: not set", f"set {where} to the puppet service, e.g. 127.0.0.1:8788"
            )
        self.endpoint = parse_endpoint(s.endpoint)
        if self.endpoint is None:
            return self.fail(f"endpoint {s.endpoint!r}: not host:port", f"set {where} to host:port")
        self.ok(f"endpoint {self.endpoint}")
        token_ok = self.check_token_variable()
        return self.check_network() and token_ok and self.check_token()

    def check_token_variable(self) -> bool:
        s = self.settings
        if not s.token:
            return self.fail(
                f"token: ${s.token_env} is not set",
                f"export {s.token_env}=<the --token of the gateway> before `lcbot run`",
            )
        self.ok(f"token in ${s.token_env}")
        return True

    def check_network(self) -> bool:
        assert self.endpoint is not None
        ep, t = self.endpoint, self.timeout
        try:
            socket.create_connection((ep.host, ep.port), timeout=t).close()
        except OSError as exc:
            return self.fail(
                f"connect to {ep}: {exc.strerror or exc}",
                "start the puppet service (the gateway command is below); a `wechaty gateway` "
                "opens its port only after it reaches its IO host ($WECHATY_APIHOST)",
            )
        self.ok(f"TCP connect to {ep}")
        try:
            answer = handshake(ep, t)
        except OSError as exc:
            answer = f"connection failed: {exc}"
        if answer == "tls":
            return self.fail(
                f"gRPC handshake with {ep}: the service speaks TLS; python-wechaty speaks "
                "plain HTTP/2",
                f"start the gateway with {NO_TLS} in its environment",
            )
        if answer != "h2":
            return self.fail(
                f"gRPC handshake with {ep}: {answer}",
                f"check that {ep} is a Wechaty puppet service",
            )
        self.ok("gRPC handshake (plain HTTP/2)")
        return True

    def check_token(self) -> bool:
        from grpclib.const import Status
        from grpclib.exceptions import GRPCError

        assert self.endpoint is not None and self.settings.token
        try:
            version = asyncio.run(_version(self.endpoint, self.settings.token, self.timeout))
        except GRPCError as exc:
            if exc.status == Status.UNAUTHENTICATED:  # its message quotes the token: not shown
                return self.fail(
                    "token refused by the service",
                    f"set ${self.settings.token_env} to the --token the gateway was started with",
                )
            return self.fail(
                f"Version call: {exc.status.name} {exc.message or ''}".rstrip(),
                "see the puppet service's log",
            )
        except (OSError, asyncio.TimeoutError) as exc:
            return self.fail(f"Version call: {exc or 'timed out'}", "see the puppet service's log")
        self.ok(f"token accepted (puppet version {version or '?'})")
        return True

    def check_login(self, connects: bool) -> None:
        state = read_login_state(self.cfg.bot.data_dir)
        if state is not None:
            line = (
                "waiting for a scan: `lcbot wechat qr` shows the code"
                if state["state"] == "awaiting_scan"
                else describe(state, str(self.cfg.path))
            )
            self.echo(f"info  login (lcbot pid {state['pid']}): {line}")
            return
        if not connects:
            self.echo("info  login: unknown (no lcbot is running and the service is not usable)")
            return
        assert self.endpoint is not None and self.settings.token
        try:
            said = asyncio.run(_service_login(self.endpoint, self.settings.token, self.timeout))
        except Exception as exc:
            said = f"unknown ({type(exc).__name__}: {exc})"
        if said == "busy":
            said = "another client holds the service's event stream (only one is allowed)"
        elif said == "not logged in":
            said += " (`lcbot run` gets a login QR code; `lcbot wechat qr` shows it)"
        self.echo(f"info  login (the service, no lcbot running): {said}")

    def print_gateway(self) -> None:
        s, ep = self.settings, self.endpoint
        port = ep.port if ep else 8788
        variable = s.token_env
        self.echo("")
        self.echo("A local gateway for this setup (Linux, web/UOS login via wechat4u):")
        if not (s.token or "").startswith("insecure_"):
            self.echo(
                f"  export {variable}=insecure_$(python3 -c 'import uuid; print(uuid.uuid4())')"
                "   # the insecure_ prefix: see README"
            )
        self.echo(f"  export {ENDPOINT_ENV}=127.0.0.1:{port}")
        self.echo(
            f"  {NO_TLS} {GATEWAY} --puppet wechaty-puppet-wechat4u "
            f'--port {port} --token "${variable}"'
        )
        self.echo(
            "The gateway needs its IO host first (api.chatie.io; offline: WECHATY_APIHOST, "
            "see README) and listens on all interfaces: firewall the port, e.g."
        )
        self.echo(f"  sudo iptables -I INPUT -p tcp --dport {port} ! -i lo -j DROP")


def run_doctor(cfg: Config, timeout: float, echo: Callable[[str], None]) -> int:
    """Run every check; the exit code (0: lcbot can connect)."""
    return Doctor(cfg, timeout, echo).run()
