"""A local iLink (WeChat ClawBot bot API) test server: ``from tests.ilink_server import
ILinkServer``. It behaves like Tencent's service, failure modes included (see server.py)."""

from tests.ilink_server.server import ILinkServer

__all__ = ["ILinkServer"]
