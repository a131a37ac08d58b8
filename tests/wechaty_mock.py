"""Run the Node Wechaty puppet-service test server (tests/wechaty_server) and drive it.

Not a test module: a helper for tests that need a real Wechaty server::

    with WechatyMockServer() as server:          # npm ci if needed, start, wait for READY
        server.add_contact("wxid_alice", "Alice")
        server.add_room("room1@chatroom", "ops", ["wxid_alice", "wxid_bot"])
        os.environ.update(server.env())         # WECHATY_PUPPET_SERVICE_ENDPOINT / _TOKEN
        ...start a python-wechaty bot: it sends Stop, then Start...
        server.wait_health(lambda h: h["clientStarts"] >= 1)
        server.login("wxid_bot", "Bot")         # the scan is confirmed: the bot sees login
        server.wait_stream(timeout=30)           # messages sent before this are dropped
        server.say("wxid_alice", "ping")
        server.wait_sent(lambda m: m["text"] == "pong", timeout=10)

The server models a real puppet service (see tests/wechaty_server/README.md): the puppet
runs from server start, a client's Stop RPC logs the account out for good (until the
next :meth:`login`), a client that just disconnects leaves it logged in.

Everything talks to the server over a JSON control channel on 127.0.0.1. The blocking
waits (``wait_stream``, ``wait_sent``) must not run on the event loop that runs the bot:
from async code use ``await server.wait_stream_async(...)`` / ``wait_sent_async(...)``.
Missing ``node`` or ``npm`` is an error, never a skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.wechaty_control import Sent, WechatyControl, WechatyServerError

__all__ = ["Sent", "WechatyMockServer", "WechatyServerError", "free_port"]

SERVER_DIR = Path(__file__).resolve().parent / "wechaty_server"
DEPENDENCIES = ("wechaty-puppet", "wechaty-puppet-mock", "wechaty-puppet-service")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise WechatyServerError(
            f"`{tool}` is not on PATH: the Wechaty test server needs Node.js >= 18 and npm"
        )
    return path


def ensure_node_modules(timeout: float = 600) -> None:
    """Run ``npm ci`` in tests/wechaty_server unless its node_modules is installed."""
    _require("node")
    npm = _require("npm")
    modules = SERVER_DIR / "node_modules"

    def installed() -> bool:
        return (modules / ".package-lock.json").is_file() and all(
            (modules / dep / "package.json").is_file() for dep in DEPENDENCIES
        )

    if installed():
        return
    lock_path = Path(tempfile.gettempdir()) / "lcbot-wechaty-server-npm-ci.lock"
    with open(lock_path, "w") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)  # one `npm ci` at a time (parallel test runs)
        except ImportError:  # pragma: no cover - Windows
            pass
        if installed():
            return
        proc = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=SERVER_DIR,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0 or not installed():
            raise WechatyServerError(
                f"npm ci in {SERVER_DIR} failed ({proc.returncode}):\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )


class WechatyMockServer(WechatyControl):
    """The Node test server as a subprocess, and its control channel.

    ``port`` is the gRPC port python-wechaty connects to (a free one by default); it stays
    the same across :meth:`restart`. gRPC listens on ``bind``, with PuppetServer's built-in
    self-signed TLS certificate if ``tls`` (python-wechaty speaks only plain HTTP/2). The
    server's log goes to ``log_path`` and is quoted in errors; without one it goes to a
    temp file that a clean :meth:`stop` deletes.
    """

    def __init__(
        self,
        token: str = "lcbot-test-token",
        *,
        port: int | None = None,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 60,
        tls: bool = False,
        bind: str = "127.0.0.1",
    ) -> None:
        self.token = token
        self.tls = tls
        self.bind = bind
        self.port = port or free_port()
        self.control_port: int | None = None
        self.startup_timeout = startup_timeout
        self._own_log = log_path is None
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="wechaty-server-", suffix=".log")
            os.close(fd)
            log_path = name
        self.log_path = Path(log_path)
        self._proc: subprocess.Popen[str] | None = None
        self._pump: threading.Thread | None = None
        self._log_file: Any = None
        self._frozen = False
        # what the server knows, replayed by restart()
        self._contacts: dict[str, str | None] = {}
        self._rooms: dict[str, tuple[str | None, list[str]]] = {}
        self._self: tuple[str, str | None] | None = None
        self._sent_before: list[Sent] = []

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        host = "127.0.0.1" if self.bind in ("0.0.0.0", "::") else self.bind
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    def env(self) -> dict[str, str]:
        """Environment variables that point python-wechaty at this server."""
        return {
            "WECHATY_PUPPET_SERVICE_ENDPOINT": self.endpoint,
            "WECHATY_PUPPET_SERVICE_TOKEN": self.token,
        }

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> WechatyMockServer:
        """Install node_modules if needed, start the server, wait for ``READY``."""
        if self.running:
            return self
        ensure_node_modules()
        node = _require("node")
        self._log_file = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115
        args = [node, "server.mjs", "--port", str(self.port), "--token", self.token]
        args += ["--control-port", str(self.control_port or 0), "--exit-on-stdin-close"]
        args += ["--bind", self.bind] + (["--tls"] if self.tls else [])
        env = {**os.environ, "WECHATY_LOG": os.environ.get("WECHATY_LOG", "info")}
        self._proc = subprocess.Popen(
            args,
            cwd=SERVER_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            text=True,
            env=env,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        self._pump = threading.Thread(
            target=self._pump_stdout, args=(self._proc, lines), daemon=True
        )
        self._pump.start()
        deadline = time.monotonic() + self.startup_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._kill()
                self._release()
                raise WechatyServerError(
                    f"no READY within {self.startup_timeout} s\n{self.log_tail()}"
                )
            try:
                line = lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:
                code = self._proc.wait()
                self._release()
                raise WechatyServerError(f"server exited ({code}) before READY\n{self.log_tail()}")
            if line.startswith("READY "):
                _, grpc_port, control_port = line.split()
                assert int(grpc_port) == self.port, line
                self.control_port = int(control_port)
                return self

    @staticmethod
    def _pump_stdout(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.strip())
        lines.put(None)

    def stop(self, timeout: float = 10) -> int | None:
        """SIGTERM the server (thawed first if frozen) and wait for it (kill it if it does
        not leave within ``timeout`` s). Returns its exit code (0 after a clean shutdown),
        None if it was not started."""
        proc = self._proc
        if proc is None:
            return None
        self.thaw()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill()
        self._release()
        if proc.returncode == 0 and self._own_log:
            self.log_path.unlink(missing_ok=True)  # recreated by the next start()
        return proc.returncode

    def freeze(self) -> None:
        """SIGSTOP the server: every RPC (and control call) hangs until :meth:`thaw`, as
        with a puppet service that stopped answering without closing its sockets."""
        if not self.running or self._proc is None:
            raise WechatyServerError("the server is not running")
        if self._frozen:
            raise WechatyServerError("the server is already frozen")
        self._proc.send_signal(signal.SIGSTOP)
        self._frozen = True

    def thaw(self) -> None:
        """SIGCONT a frozen server (nothing if it is not frozen)."""
        if self._frozen and self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGCONT)
        self._frozen = False

    @contextlib.contextmanager
    def frozen(self) -> Iterator[WechatyMockServer]:
        """``with server.frozen(): ...`` freezes the server for the block."""
        self.freeze()
        try:
            yield self
        finally:
            self.thaw()

    def restart(self) -> None:
        """Stop and start again on the same ports; contacts, rooms, the sent list and a
        login that was still there carry over (the new server boots logged in). A
        connected python-wechaty sees its stream drop and reconnects on its own schedule
        (it sleeps 60 s after "network is not good"); its Stop on reconnect drops the login."""
        self_id: tuple[str, str | None] | None = None
        with contextlib.suppress(WechatyServerError, OSError):
            self._sent_before = self.sent()
            if self.health()["loggedIn"]:
                self_id = self._self
        self.stop()
        self.start()
        for contact_id, name in self._contacts.items():
            self._call("POST", "/contact", {"id": contact_id, "name": name})
        for room_id, (topic, members) in self._rooms.items():
            self._call("POST", "/room", {"id": room_id, "topic": topic, "members": members})
        if self_id is not None:
            self._call("POST", "/login", {"id": self_id[0], "name": self_id[1]})

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)

    def _release(self) -> None:
        """Close pipes and the log of a process that has exited."""
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(OSError):
                if proc.stdin is not None:
                    proc.stdin.close()
            if self._pump is not None:
                self._pump.join(5)
            if proc.stdout is not None:
                proc.stdout.close()
        self._pump = None
        self._frozen = False
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's log, for error messages."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""

    def __enter__(self) -> WechatyMockServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control channel ---------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None, timeout: float = 10) -> Any:
        if not self.running or self.control_port is None:
            raise WechatyServerError("the server is not running")
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.control_port}{path}",
            data=data,
            method=method,
            headers={"content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.load(response)
        except urllib.error.HTTPError as err:
            try:
                detail = json.load(err).get("error", "")
            except ValueError:
                detail = ""
            raise WechatyServerError(f"{method} {path}: {err.code} {detail}") from None
