"""Alerts in-process: routing, hooks, de-duplication, silences, mutes, resolved alerts."""

from __future__ import annotations

import asyncio
import threading

import pytest

from lcbot import hookimpl
from lcbot.alerts import Alert
from tests.engine import running_bot

EVERYONE = ["root1", "admin1", "admin2", "user1"]


def run(coro):
    return asyncio.run(coro)


def receivers(bot, text_part: str) -> set[str]:
    return {r for r, t in bot.transport.sent if text_part in t}


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("critical", {"root1", "admin1", "admin2", "user1"}),
        ("warning", {"root1", "admin1", "admin2"}),
        ("info", {"root1"}),
    ],
)
def test_default_routes(tmp_path, level, expected):
    async def go():
        async with running_bot(tmp_path) as bot:
            alert_id = await bot.alert("something happened", level=level)
            assert receivers(bot, "something happened") == expected
            assert bot.lines("root1") == [f"{level.upper()} something happened"]
            outcome = bot.outcome(alert_id)
            assert outcome["state"] == "delivered" and set(outcome["to"]) == expected

    run(go())


def test_configured_routes(tmp_path):
    routes = {"alerts": {"routes": {"info": "user", "critical": "admin"}}}

    async def go():
        async with running_bot(tmp_path, config=routes) as bot:
            await bot.alert("fyi", level="info")
            await bot.alert("fire", level="critical")
            await bot.alert("hmm", level="warning")  # default stays admin
            assert receivers(bot, "fyi") == set(EVERYONE)
            assert receivers(bot, "fire") == {"root1", "admin1", "admin2"}
            assert receivers(bot, "hmm") == {"root1", "admin1", "admin2"}

    run(go())


def test_title_and_source_and_ctx_alert(tmp_path):
    raised = []

    class Raiser:
        __name__ = "raiser"

        @hookimpl
        def register_commands(self, registry):
            @registry.command("page")
            def page(ctx):
                raised.append(ctx.alert(ctx.extra, level="critical", title="paged"))
                return "paged"

    async def go():
        async with running_bot(tmp_path, Raiser()) as bot:
            replies = await bot.send("user1", "page db is slow")
            assert sorted(replies) == ["CRITICAL paged: db is slow", "paged"]
            assert "CRITICAL paged: db is slow" in bot.lines("admin2")
            (alert,) = raised
            assert alert.id > 0 and alert.outcome["state"] == "delivered"
            row = bot.app.db.conn.execute(
                "SELECT source, title FROM alerts WHERE id = ?", (alert.id,)
            ).fetchone()
            assert row == ("page", "paged")

    run(go())


class Hooks:
    __name__ = "hooks"

    def __init__(self):
        self.seen: list[Alert] = []

    @hookimpl
    def on_alert(self, alert):
        self.seen.append(alert)
        if "noise" in alert.text:
            return False
        if "escalate" in alert.text:
            alert.level = "critical"
            alert.text = alert.text.upper()
        if "only-bob" in alert.text:
            alert.recipients = ["admin2"]
        return None


def test_on_alert_can_edit_reroute_and_suppress(tmp_path):
    async def go():
        hooks = Hooks()
        async with running_bot(tmp_path, hooks) as bot:
            noise = await bot.alert("noise from test", level="critical")
            assert bot.transport.sent == []
            assert bot.outcome(noise)["state"] == "suppressed"
            esc = await bot.alert("please escalate", level="info")
            assert receivers(bot, "PLEASE ESCALATE") == set(EVERYONE)
            row = bot.app.db.conn.execute(
                "SELECT level, text FROM alerts WHERE id = ?", (esc.id,)
            ).fetchone()
            assert row == ("critical", "PLEASE ESCALATE")  # the recorded alert is the edited one
            await bot.alert("only-bob sees this", level="critical")
            assert receivers(bot, "only-bob") == {"admin2"}
            assert len(hooks.seen) == 3  # once per alert

    run(go())


def test_any_false_suppresses(tmp_path):
    class Allow:
        __name__ = "allow"

        @hookimpl
        def on_alert(self, alert):
            return True

    async def go():
        async with running_bot(tmp_path, Allow(), Hooks()) as bot:
            alert_id = await bot.alert("noise", level="critical")
            assert bot.transport.sent == [] and bot.outcome(alert_id)["state"] == "suppressed"

    run(go())


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_dedup_within_and_after_repeat_interval_and_resolved(tmp_path):
    async def go():
        sections = {"alerts": {"repeat_interval": 600}}
        async with running_bot(tmp_path, config=sections) as bot:
            clock = Clock()
            bot.app.router.clock = clock
            first = await bot.alert("disk 91%", level="critical", key="disk:/")
            assert bot.lines("user1") == ["CRITICAL disk 91%"]
            clock.now += 60
            repeats = [
                await bot.alert("disk 92%", level="critical", key="disk:/") for _ in range(3)
            ]
            assert bot.lines("user1") == ["CRITICAL disk 91%"]
            assert {bot.outcome(r)["state"] for r in repeats} == {"deduplicated"}
            assert bot.outcome(first)["state"] == "delivered"
            other = await bot.alert("disk 50%", level="critical", key="disk:/home")
            assert bot.outcome(other)["state"] == "delivered"  # keys are independent
            clock.now += 600
            await bot.alert("disk 95%", level="critical", key="disk:/")
            last = bot.lines("user1")[-1]
            assert last.startswith("CRITICAL disk 95% (repeated 3× since ")
            await bot.alert("disk 40%", level="critical", key="disk:/", resolved=True)
            assert bot.lines("user1")[-1] == "RESOLVED disk 40%"
            await bot.alert("disk 93%", level="critical", key="disk:/")  # key was cleared
            assert bot.lines("user1")[-1] == "CRITICAL disk 93%"

    run(go())


def test_dedup_state_survives_restart(tmp_path):
    async def go():
        async with running_bot(tmp_path) as bot:
            await bot.alert("first", level="critical", key="k")
        async with running_bot(tmp_path) as bot:
            again = await bot.alert("second", level="critical", key="k")
            assert bot.outcome(again)["state"] == "deduplicated"

    run(go())


def test_mute_and_unmute(tmp_path):
    async def go():
        async with running_bot(tmp_path) as bot:
            (reply,) = await bot.send("user1", "mute 2h")
            assert reply.startswith("alerts muted for 2h")
            alert_id = await bot.alert("fire", level="critical")
            assert "CRITICAL fire" not in bot.lines("user1")
            assert "CRITICAL fire" in bot.lines("admin1")
            assert bot.outcome(alert_id)["muted"] == ["user1"]
            assert await bot.send("user1", "mute forever") == [
                "mute failed: 'forever' is not a duration (examples: 90s, 30m, 1h, 2d, 1h30m)"
            ]
            assert await bot.send("user1", "unmute") == ["alerts unmuted"]
            await bot.alert("fire again", level="critical")
            assert "CRITICAL fire again" in bot.lines("user1")
            (default,) = await bot.send("admin1", "mute")
            assert default.startswith("alerts muted for 1h")

    run(go())


def test_mutes_and_silences_survive_restart(tmp_path):
    async def go():
        async with running_bot(tmp_path) as bot:
            await bot.send("user1", "mute 1h")
            await bot.send("admin1", "silence disk:/ 1h")
        async with running_bot(tmp_path) as bot:
            a = await bot.alert("fire", level="critical")
            assert bot.outcome(a)["muted"] == ["user1"]
            s = await bot.alert("disk", level="critical", key="disk:/")
            assert bot.outcome(s)["state"] == "silenced"

    run(go())


def test_silence_commands(tmp_path):
    async def go():
        async with running_bot(tmp_path) as bot:
            assert await bot.send("user1", "silence disk:/ 1h") == ["not allowed: silence"]
            (usage,) = await bot.send("admin1", "silence disk:/")
            assert usage.startswith(
                "silence failed: usage: silence KEY DURATION (e.g. silence disk:/ 2h) or "
                "silence MATCHER… DURATION [COMMENT]"
            )
            assert await bot.send("admin1", "silence disk:/ 30m") == ["silenced disk:/ for 30m"]
            assert bot.lines("admin2") == ["admin1 set silence: disk:/ 30m"]
            (listing,) = await bot.send("admin2", "silences")
            assert listing.startswith("silences:\ndisk:/ — 30m left (by admin1)") or (
                "disk:/ — 29m" in listing
            )
            silenced = await bot.alert("disk full", level="critical", key="disk:/")
            assert bot.outcome(silenced)["state"] == "silenced"
            assert "CRITICAL disk full" not in bot.lines("user1")
            resolved = await bot.alert("disk ok", level="critical", key="disk:/", resolved=True)
            assert bot.outcome(resolved)["state"] == "silenced"
            assert await bot.send("admin2", "unsilence disk:/") == ["unsilenced disk:/"]
            assert await bot.send("admin2", "silences") == ["no active silences"]
            delivered = await bot.alert("disk full", level="critical", key="disk:/")
            assert bot.outcome(delivered)["state"] == "delivered"

    run(go())


def test_alert_from_many_threads(tmp_path):
    async def go():
        async with running_bot(tmp_path) as bot:
            alerts = []
            lock = threading.Lock()
            plugin_bot = bot.app.bot("threads")

            def raise_many(t: int) -> None:
                for i in range(50):
                    alert = plugin_bot.alert(f"t{t} n{i}", level="info")
                    with lock:
                        alerts.append(alert)

            await asyncio.gather(*(asyncio.to_thread(raise_many, t) for t in range(4)))
            assert await bot.app.drain(10)
            assert len({a.id for a in alerts}) == 200 and all(a.id > 0 for a in alerts)
            lines = bot.lines("root1")
            assert sorted(lines) == sorted(f"INFO t{t} n{i}" for t in range(4) for i in range(50))

    run(go())


def test_bad_level_and_bad_routes(tmp_path):
    from lcbot.errors import ConfigError, UsageError

    async def go():
        async with running_bot(tmp_path) as bot:
            with pytest.raises(UsageError, match="valid levels"):
                bot.app.bot("p").alert("x", level="fatal")
            with pytest.raises(ValueError, match="empty"):  # plugins may catch ValueError
                bot.app.bot("p").alert("   ", level="info")

    run(go())
    with pytest.raises(ConfigError, match=r"alerts\.routes\.info"):
        run(running_bot(tmp_path, config={"alerts": {"routes": {"info": "boss"}}}).__aenter__())
    with pytest.raises(ConfigError, match="unknown level"):
        run(running_bot(tmp_path, config={"alerts": {"routes": {"fatal": "user"}}}).__aenter__())


def test_one_round_of_repeats_stores_keys_and_last_seen_as_in_memory(tmp_path):
    """De-duplication keys and firing ``last_seen`` are written once per routing round;
    after a restart they are what memory held: repeats counted, a resolved key gone."""

    async def go():
        async with running_bot(tmp_path) as bot:
            await bot.alert("disk full", level="critical", key="disk")
            await bot.alert("cpu hot", level="critical", key="cpu")
            raiser = bot.app.bot("test")
            for i in range(5):  # one round: submitted together, routed together
                raiser.alert(f"disk full {i}", level="critical", key="disk")
            raiser.alert("cpu fine", level="critical", key="cpu", resolved=True)
            await bot.settle()
            keys = dict(bot.app.router.keys)
            (seen,) = [f.last_seen for f in bot.app.router.firing.listing()]
            assert keys["disk"][1] == 5 and "cpu" not in keys
        async with running_bot(tmp_path) as bot:
            assert bot.app.router.keys == keys
            (firing,) = bot.app.router.firing.listing()
            assert (firing.ident, firing.last_seen) == ("disk", seen)
            again = await bot.alert("disk full again", level="critical", key="disk")
            assert bot.outcome(again)["state"] == "deduplicated"
            assert bot.app.router.keys["disk"][1] == 6

    run(go())


def test_alerts_stored_by_this_process_and_taken_in_memory_are_routed_once(tmp_path):
    """The HTTP listener's alerts are rows in state ``new`` handed to the router in
    memory: the look for stored alerts skips them."""
    from lcbot.alerts import make_alert
    from lcbot.db import alerts as sql
    from lcbot.db import transaction

    async def go():
        async with running_bot(tmp_path) as bot:
            conn = bot.app.db.conn
            taken = [make_alert("from http", level="critical")]
            with transaction(conn):
                (taken[0].id,) = sql.insert_new(conn, taken)
                sql.insert_new(conn, [make_alert("from the cli", level="critical")])
            bot.app.router.submit_stored(taken)
            await bot.settle()
            assert bot.lines("user1") == ["CRITICAL from http", "CRITICAL from the cli"]
            assert bot.outcome(taken[0])["state"] == "delivered"
            assert not bot.app.router._taken

    run(go())


def test_a_routing_round_ends_at_its_message_budget_and_the_next_goes_on(tmp_path, monkeypatch):
    """A round of the router task puts at most about ``ROUND_MESSAGES`` messages (the alert
    that crosses it goes whole), so each commit stays short; the rest, raised in process or
    stored by another process, is routed in the next rounds: every alert once, in order."""
    from lcbot import router as router_module
    from lcbot.alerts import make_alert
    from lcbot.db import alerts as sql
    from lcbot.db import transaction

    monkeypatch.setattr(router_module, "ROUND_MESSAGES", 5)

    async def go():
        async with running_bot(tmp_path) as bot:
            router = bot.app.router
            rounds = []
            route_pending = router.route_pending

            def counted(limit=None):
                routed = route_pending(limit)
                rounds.append(router._puts)
                return routed

            router.route_pending = counted
            with transaction(bot.app.db.conn):  # as `lcbot alert` stores them
                sql.insert_new(
                    bot.app.db.conn, [make_alert(f"stored {i}", "critical") for i in range(6)]
                )
            raiser = bot.app.bot("test")
            for i in range(10):  # submitted together: a single round without the budget
                raiser.alert(f"raised {i}", level="critical", key=f"k{i}")
            router.waker.wake()  # the stored ones too
            for _ in range(500):  # the router task's rounds (``settle`` would route the rest)
                if sum(rounds) == 16 * len(EVERYONE):
                    break
                await asyncio.sleep(0.01)
            await bot.settle()
            expected = [f"CRITICAL raised {i}" for i in range(10)]
            for user in EVERYONE:  # the stored ones and the raised ones, each in order
                lines = bot.lines(user)
                assert [t for t in lines if "raised" in t] == expected
                assert sorted(t for t in lines if "stored" in t) == [
                    f"CRITICAL stored {i}" for i in range(6)
                ]
            assert max(rounds) <= 5 + len(EVERYONE) - 1 and len([r for r in rounds if r]) >= 8

    run(go())
