"""On call: the rota's turns in a time zone, overrides, routing of critical alerts, chat."""

from __future__ import annotations

import asyncio
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from lcbot.errors import ConfigError
from lcbot.oncall import Handover, OnCall, Rota, rota_from_settings
from lcbot.testing import Harness
from tests.engine import USERS, running_bot
from tests.procs import lcbot, make_project, one_line

SHANGHAI = ZoneInfo("Asia/Shanghai")  # UTC+8 all year: no daylight saving
BERLIN = ZoneInfo("Europe/Berlin")


def at(zone: ZoneInfo, *fields: int) -> float:
    return dt.datetime(*fields, tzinfo=zone).timestamp()


def weekly(users=("alice", "bob"), zone=SHANGHAI, handover="mon 09:00") -> Rota:
    return Rota(users, Handover.parse(handover), zone)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_handover_texts():
    assert Handover.parse("mon 09:00") == Handover(0, 9, 0)
    assert Handover.parse("Sun 23:30") == Handover(6, 23, 30)
    assert Handover.parse("09:00") == Handover.parse("daily 9:00") == Handover(None, 9, 0)
    for bad in ("monday 09:00", "mon 24:00", "9", "", "mon 09:60"):
        with pytest.raises(ValueError, match="expected a handover"):
            Handover.parse(bad)


def test_weekly_turns_change_at_monday_0900_in_the_rota_zone():
    rota = weekly()
    monday = at(SHANGHAI, 2026, 3, 2, 9, 0)  # a Monday
    before, after = rota.shift(monday - 1), rota.shift(monday)
    sunday_night = rota.shift(at(SHANGHAI, 2026, 3, 1, 23, 59))
    assert before.user != after.user and {before.user, after.user} == {"alice", "bob"}
    assert sunday_night == before  # the week boundary is the handover, not midnight
    assert before.until == after.start == monday
    assert after.until == at(SHANGHAI, 2026, 3, 9, 9, 0)
    assert rota.shift(monday + 7 * 86400).user == before.user  # round and round
    # the same instant seen from UTC: Monday 09:00 in Shanghai is Monday 01:00 UTC
    assert dt.datetime.fromtimestamp(monday, dt.timezone.utc).hour == 1


def test_daily_rota_and_three_people():
    rota = weekly(("alice", "bob", "carol"), handover="09:00")
    day = at(SHANGHAI, 2026, 3, 2, 9, 0)
    users = [rota.shift(day + n * 86400 + 60).user for n in range(4)]
    assert users[3] == users[0] and len(set(users[:3])) == 3
    assert rota.shift(day + 60).until == day + 86400


def test_handover_keeps_its_wall_clock_time_across_daylight_saving():
    rota = weekly(zone=BERLIN)
    march_23 = at(BERLIN, 2026, 3, 23, 9, 0)  # CET; clocks go forward on Sunday 29 March
    shift = rota.shift(march_23 + 60)
    assert shift.until == at(BERLIN, 2026, 3, 30, 9, 0)  # 09:00 CEST
    assert shift.until - shift.start == 7 * 86400 - 3600


def test_override_until_the_next_handover_then_the_rota_again():
    monday = at(SHANGHAI, 2026, 3, 2, 9, 0)
    clock, writes = Clock(monday + 3600), []
    state = OnCall(weekly(), lambda op, *args: writes.append(args), clock)
    regular = state.on_call()
    shift = state.take("carol", "carol")
    assert state.on_call() == "carol" and shift.until == at(SHANGHAI, 2026, 3, 9, 9, 0)
    assert writes == [("carol", shift.until, "carol", clock.now)]
    assert "taken over by carol" in state.describe()
    assert state.on_call(shift.until - 1) == "carol"
    assert state.on_call(shift.until) != regular  # the next person of the rota
    assert state.on_call(shift.until) in {"alice", "bob"}


def test_bad_oncall_settings_name_file_and_key():
    good = {"rota": ["alice"], "handover": "mon 09:00", "timezone": "Asia/Shanghai"}
    assert rota_from_settings(good, ["alice"], "lcbot.toml").zone == SHANGHAI
    cases = [
        ({"rota": ["zed"]}, "lcbot.toml: oncall.rota: no user named 'zed' in [[users]]"),
        ({"handover": "noon"}, "lcbot.toml: oncall.handover: expected a handover"),
        ({"timezone": "Mars/Olympus"}, "lcbot.toml: oncall.timezone: unknown time zone"),
    ]
    for change, message in cases:
        with pytest.raises(ConfigError) as caught:
            rota_from_settings({**good, **change}, ["alice"], "lcbot.toml")
        assert str(caught.value).startswith(message)


def test_config_check_refuses_an_unknown_rota_user(tmp_path):
    project = make_project(tmp_path / "bot", extra='[oncall]\nrota = ["me", "nobody"]\n')
    result = lcbot(project, "config", "check")
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert "lcbot.toml: oncall.rota: no user named 'nobody'" in line


# --- through a real bot -----------------------------------------------------------------------

ONCALL = {
    "oncall": {"rota": ["user1"], "timezone": "Asia/Shanghai"},
    "alerts": {"routes": {"critical": "admin"}},
}


def test_critical_alerts_reach_the_one_on_call_first(tmp_path):
    async def go():
        async with running_bot(tmp_path, config=ONCALL) as bot:
            fire = await bot.alert("db down", level="critical")
            assert bot.outcome(fire)["to"][0] == "user1"  # first, beyond their routes
            assert set(bot.outcome(fire)["to"]) == {"user1", "root1", "admin1", "admin2"}
            warn = await bot.alert("disk 80%", level="warning")
            assert "user1" not in bot.outcome(warn)["to"]  # everyone else keeps routes

    asyncio.run(go())


def test_oncall_and_oncall_take_in_chat_survive_a_restart(tmp_path):
    async def go():
        bot = await Harness(tmp_path, users=USERS, config=ONCALL).start()
        try:
            (reply,) = await bot.send("user1", "oncall")
            first, rota = reply.split("\n")
            assert first.startswith("on call: user1 until Mon ") and "(Asia/Shanghai)" in first
            assert rota == "rota: user1 (handover mon 09:00)"
            assert await bot.send("user1", "oncall take") == [
                "oncall failed: only an admin can take on call"
            ]
            (taken,) = await bot.send("admin1", "oncall take")
            assert taken.startswith("you are on call until Mon ")
            assert bot.messages_to("user1")[-1].startswith("admin1 took on call from you")
            bot = await bot.restart()
            (reply,) = await bot.send("user1", "oncall")
            assert reply.startswith("on call: admin1 until Mon ")
            assert "taken over by admin1" in reply
            fire = await bot.alert("db down", level="critical")
            assert bot.outcome(fire)["to"][0] == "admin1"
            assert "user1" not in bot.outcome(fire)["to"]  # not on call now
        finally:
            await bot.stop()

    asyncio.run(go())
