"""lcbot.transports.wechaty_compat: PyPI wechaty 0.10.7 imports on this Python, with
current pyee and urllib3, and its shims behave like what they replace.

The import checks run in a fresh interpreter (``sys.executable``), so nothing that this
test process already imported can hide a failure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from lcbot.transports import wechaty_compat

pytestmark = pytest.mark.wechat  # CI runs these on a second Python too

REPO = Path(__file__).resolve().parents[1]

IMPORT_CHECK = """
import socket
import sys

from lcbot.transports import wechaty_compat

if FORCE_STAND_IN:  # behave as on Python 3.13, where telnetlib is gone
    import importlib.util

    real_find_spec = importlib.util.find_spec
    importlib.util.find_spec = lambda name, *a: (
        None if name == "telnetlib" else real_find_spec(name, *a)
    )

wechaty_compat.apply()
wechaty_compat.apply()  # idempotent
assert "wechaty" not in sys.modules, "apply() imported wechaty itself"

import wechaty
from wechaty import Wechaty, WechatyOptions

import pyee
import pyee.asyncio
import telnetlib
import urllib3

assert pyee.AsyncIOEventEmitter is pyee.asyncio.AsyncIOEventEmitter
assert urllib3.get_host("https://example.com:8443/a?b") == ("https", "example.com", 8443)
assert urllib3.get_host("example.com") == ("http", "example.com", None)
if FORCE_STAND_IN or sys.version_info >= (3, 13):
    assert telnetlib.Telnet is wechaty_compat._Telnet, telnetlib
else:
    assert telnetlib.Telnet is not wechaty_compat._Telnet

# each WechatyOptions has its own PuppetOptions (wechaty writes endpoint/token into it)
first, second = WechatyOptions(), WechatyOptions()
assert first.puppet_options is not second.puppet_options

# the real port probes that use telnetlib: wechaty's web port check, the endpoint ping
from wechaty.plugin import _check_local_port
from wechaty_puppet_service.utils import ping_endpoint

with socket.socket() as listener:
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    assert _check_local_port(port) is True
    assert ping_endpoint(f"127.0.0.1:{port}") is True
assert _check_local_port(port) is False
assert ping_endpoint(f"127.0.0.1:{port}") is False

print("OK", wechaty.__name__, Wechaty.__name__)
"""


def run_check(tmp_path: Path, force_stand_in: bool) -> subprocess.CompletedProcess[str]:
    code = f"FORCE_STAND_IN = {force_stand_in}\n" + textwrap.dedent(IMPORT_CHECK)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WECHATY_")}
    # wechaty creates $CACHE_DIR (default ./.wechaty) when it is imported
    env["CACHE_DIR"] = str(tmp_path / "wechaty-cache")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("force_stand_in", [False, True], ids=["this-python", "no-telnetlib"])
def test_apply_then_import_wechaty(tmp_path: Path, force_stand_in: bool) -> None:
    proc = run_check(tmp_path, force_stand_in)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "OK wechaty Wechaty", proc.stdout + proc.stderr
    assert not (tmp_path / ".wechaty").exists()


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_telnet_stand_in_probes_like_telnetlib(listening_port: int) -> None:
    telnet = wechaty_compat._Telnet()
    telnet.open("127.0.0.1", port=listening_port, timeout=3)
    telnet.close()
    with wechaty_compat._Telnet("127.0.0.1", listening_port, 3) as probe:
        assert (probe.host, probe.port) == ("127.0.0.1", listening_port)
    port = closed_port()
    with pytest.raises(OSError):
        wechaty_compat._Telnet().open("127.0.0.1", port=port, timeout=3)
    with pytest.raises(OSError):
        wechaty_compat._Telnet("127.0.0.1", port, 3)
