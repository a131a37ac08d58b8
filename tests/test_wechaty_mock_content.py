"""The Wechaty test server's requests, message kinds and file sends, through the real
python-wechaty client (tests.wechaty_bot.Bot); plus its --tls flag and freeze/stop.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.wechaty_bot import BOT, WAIT, Bot, serve, until
from tests.wechaty_kinds import kind_message, quote_text
from tests.wechaty_mock import SERVER_DIR, WechatyMockServer, WechatyServerError

pytestmark = pytest.mark.wechat

ALICE, CAROL = "wxid_alice", "wxid_carol"
ROOM, NEW_ROOM = "4242@chatroom", "5151@chatroom"
MIB = 1024 * 1024
PYTHON_TYPES = {"image": "IMAGE", "voice": "AUDIO", "sticker": "EMOTICON", "file": "ATTACHMENT"}
PYTHON_TYPES |= {"recall": "RECALLED", "link": "URL"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WechatyMockServer]:
    with serve(tmp_path_factory, {ALICE: "Alice"}) as srv:
        srv.add_room(ROOM, "ops", [ALICE, BOT])
        yield srv


def test_friend_request_loads_and_accepts(wechaty_env: WechatyMockServer) -> None:
    server = wechaty_env

    async def scenario() -> None:
        async with Bot(server) as bot:
            fid = server.friend_request(CAROL, "I am Carol from ops", name="Carol")
            assert server.friendships() == [
                {"id": fid, "from": CAROL, "hello": "I am Carol from ops", "accepted": False}
            ]
            from wechaty_puppet import FriendshipType

            friendship = bot.wechaty.Friendship.load(fid)
            await asyncio.wait_for(friendship.ready(), WAIT)
            assert friendship.hello() == "I am Carol from ops"
            assert friendship.type() == FriendshipType.FRIENDSHIP_TYPE_RECEIVE
            contact = friendship.contact()
            await asyncio.wait_for(contact.ready(), WAIT)
            assert (contact.contact_id, contact.name, contact.is_friend()) == (
                CAROL,
                "Carol",
                False,
            )
            await asyncio.wait_for(friendship.accept(), WAIT)
            assert server.friendships()[0]["accepted"] is True
            await asyncio.wait_for(contact.ready(force_sync=True), WAIT)
            assert contact.is_friend() is True

    asyncio.run(scenario())


def test_room_invitation_loads_and_accepting_joins_the_room(
    wechaty_env: WechatyMockServer,
) -> None:
    """As the 'room-invite' event hands it over: ``bot.RoomInvitation.load(id)``. Two
    python-wechaty 0.10.7 bugs made this fail, fixed by wechaty_compat: ``load()`` built
    the base class, which has no puppet ("puppet not set"), and
    ``room_invitation_payload()`` rebuilt its response from ``to_dict()``'s camelCase keys
    (TypeError: "unexpected keyword argument 'inviterId'")."""
    server = wechaty_env

    async def scenario() -> None:
        async with Bot(server) as bot:
            iid = server.room_invite(NEW_ROOM, ALICE, topic="night shift")
            invitation = bot.wechaty.RoomInvitation.load(iid)
            inviter = await asyncio.wait_for(invitation.inviter(), WAIT)
            assert inviter.contact_id == ALICE
            assert await asyncio.wait_for(invitation.topic(), WAIT) == "night shift"
            await asyncio.wait_for(invitation.accept(), WAIT)
            room = bot.wechaty.Room.load(NEW_ROOM)
            await asyncio.wait_for(room.ready(), WAIT)
            members = await asyncio.wait_for(room.member_list(), WAIT)
            assert sorted(m.contact_id for m in members) == sorted([ALICE, BOT])

    asyncio.run(scenario())
    assert server.room_invites() == [
        {"id": server.room_invites()[0]["id"], "room": NEW_ROOM, "inviter": ALICE, "accepted": True}
    ]


def test_file_and_image_sends_are_recorded_with_size_and_sha256(
    wechaty_env: WechatyMockServer,
) -> None:
    server = wechaty_env
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    )

    async def scenario() -> None:
        from wechaty_puppet import FileBox

        async with Bot(server) as bot:
            alice = bot.wechaty.Contact.load(ALICE)
            await asyncio.wait_for(
                alice.say(FileBox.from_base64(base64.b64encode(pdf), "r.pdf")), WAIT
            )
            await asyncio.wait_for(
                alice.say(FileBox.from_base64(base64.b64encode(png), "a.png")), WAIT
            )

    asyncio.run(scenario())
    sent = server.sent()
    assert [(m["type"], m["name"], m["size"], m["sha256"]) for m in sent] == [
        ("Attachment", "r.pdf", len(pdf), hashlib.sha256(pdf).hexdigest()),
        ("Image", "a.png", len(png), hashlib.sha256(png).hexdigest()),
    ]
    assert [m["mediaType"] for m in sent] == ["application/pdf", "image/png"]


def test_grpc_accepts_files_up_to_about_3_mib(wechaty_env: WechatyMockServer) -> None:
    """PuppetServer sets no gRPC message limit, so grpc-js's default applies: 4 MiB per
    request. A FileBox travels as base64 JSON (4/3 of the bytes), so a file of 3 MiB
    minus a little overhead is the most a bot can send."""
    server = wechaty_env

    async def send(size: int) -> None:
        from wechaty_puppet import FileBox

        data = bytes(size)
        async with Bot(server) as bot:
            box = FileBox.from_base64(base64.b64encode(data), "big.bin")
            await asyncio.wait_for(bot.wechaty.Contact.load(ALICE).say(box), WAIT)

    asyncio.run(send(3 * MIB - 4096))
    assert server.sent()[-1]["size"] == 3 * MIB - 4096
    with pytest.raises(Exception, match=r"RESOURCE_EXHAUSTED|larger than max"):
        asyncio.run(send(3 * MIB))
    assert len(server.sent()) == 1


@pytest.mark.parametrize("kind", ["image", "voice", "sticker", "file", "recall", "link"])
def test_message_kinds_arrive_with_their_xml(wechaty_env: WechatyMockServer, kind: str) -> None:
    server = wechaty_env

    async def scenario() -> None:
        async with Bot(server) as bot:
            server.say_kind(ALICE, kind)
            await until(lambda: bot.payloads, f"{kind} message")
            payload = bot.payloads[0]
            assert payload.text == kind_message(kind, ALICE, BOT, "Alice")[1]
            assert payload.text.startswith("<")
            assert payload.from_id == ALICE  # python-wechaty 0.10.7: from_id, to_id
            # python-wechaty's own enum (wechaty-grpc's numbers differ from wechaty-puppet's)
            assert payload.type.name == f"MESSAGE_TYPE_{PYTHON_TYPES[kind]}"

    asyncio.run(scenario())


def test_say_self_and_quotes(wechaty_env: WechatyMockServer) -> None:
    server = wechaty_env

    async def scenario() -> None:
        async with Bot(server) as bot:
            helper = bot.wechaty.Contact.load("filehelper")
            await asyncio.wait_for(helper.ready(), WAIT)
            assert helper.name == "File Transfer"
            server.say_self("filehelper", "note to self")
            await until(lambda: "note to self" in bot.own, "own message")
            assert bot.payloads[-1].to_id == "filehelper"
            server.say_quote(ALICE, "LcBot", "disk 91%", "fixed", room=ROOM, mention=True)
            quoted = quote_text("LcBot", "disk 91%", "fixed")
            await until(lambda: bot.seen, "quote")
            assert bot.seen[0].text.endswith(quoted) and bot.seen[0].mention_self
            assert quoted == "「LcBot：disk 91%」\n- - - - - - - - - - - - - - -\nfixed"
            with pytest.raises(WechatyServerError, match="404 unknown contact: nobody"):
                server.say_self("nobody", "x")

    asyncio.run(scenario())


def test_a_frozen_server_still_stops_cleanly(tmp_path: Path) -> None:
    srv = WechatyMockServer(log_path=tmp_path / "server.log").start()
    try:
        srv.freeze()
        with pytest.raises(WechatyServerError, match="already frozen"):
            srv.freeze()
    finally:
        code = srv.stop()
    assert code == 0, srv.log_tail()


def test_tls_flag_serves_the_builtin_self_signed_certificate(tmp_path: Path) -> None:
    ca = SERVER_DIR / "node_modules/wechaty-puppet-service/dist/esm/src/auth/ca.js"
    pem = re.search(
        r"TLS_INSECURE_SERVER_CERT = `(-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----)",
        ca.read_text(),
        re.S,
    )
    assert pem is not None, f"no TLS_INSECURE_SERVER_CERT in {ca}"
    with WechatyMockServer(log_path=tmp_path / "server.log", tls=True) as srv:
        assert (srv.health()["tls"], srv.health()["bind"]) == (True, "127.0.0.1")
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["h2"])
        with (
            socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT) as sock,
            context.wrap_socket(sock, server_hostname="wechaty-puppet-service") as tls,
        ):
            assert tls.getpeercert(binary_form=True) == ssl.PEM_cert_to_DER_cert(pem.group(1))
            assert tls.selected_alpn_protocol() == "h2"
