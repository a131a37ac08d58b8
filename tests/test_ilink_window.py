"""The iLink reply window and rate-limit back-off (pure logic, no clock), and the state file."""

from __future__ import annotations

import json
import stat

import pytest

from lcbot.errors import ConfigError
from lcbot.schema import SCHEMA
from lcbot.transports.ilink_state import LinkState, load_state, save_state, state_path
from lcbot.transports.ilink_window import CLOSED, EXPIRED, NO_MESSAGE, OPEN, Rules, Window

RULES = Rules(window=3600.0, max_replies=3, nudge=1800.0)
T0 = 1_000_000.0


def opened(token: str = "ctx-1") -> Window:
    w = Window()
    w.inbound(token, T0)
    return w


def test_no_message_yet_holds_until_the_user_writes():
    w = Window()
    assert w.state(T0, RULES) == NO_MESSAGE
    reason, until = w.hold("alice", T0, RULES)
    assert reason == "no message from alice yet: waits for alice to write"
    assert until is None
    assert w.allowance(T0, RULES) == 0


def test_an_inbound_message_opens_the_window_with_a_full_budget():
    w = opened()
    assert w.state(T0 + 10, RULES) == OPEN
    assert w.hold("alice", T0 + 10, RULES) is None
    assert w.allowance(T0 + 10, RULES) == 3
    w.sent(T0 + 11, RULES)
    assert w.allowance(T0 + 11, RULES) == 2


def test_the_window_closes_with_time():
    w = opened()
    assert w.state(T0 + 3599, RULES) == OPEN
    assert w.state(T0 + 3600, RULES) == CLOSED
    reason, until = w.hold("alice", T0 + 2 * 3600, RULES)
    assert reason == "reply window closed (alice last wrote 2h ago): waits for alice to write"
    assert until is None
    assert w.closed_since(T0 + 7200, RULES) == T0 + 3600


def test_the_budget_closes_the_window_until_the_user_writes_again():
    w = opened()
    for i in range(3):
        assert w.allowance(T0 + i, RULES) == 3 - i
        w.sent(T0 + i, RULES)
    assert w.state(T0 + 5, RULES) == CLOSED
    reason, _ = w.hold("bob", T0 + 65, RULES)
    assert reason.startswith("reply budget used (3 messages since bob wrote 1m5s ago)")
    assert w.closed_since(T0 + 65, RULES) == T0 + 2
    w.inbound("ctx-2", T0 + 100)
    assert w.state(T0 + 100, RULES) == OPEN
    assert w.allowance(T0 + 100, RULES) == 3
    assert w.context_token == "ctx-2"


def test_a_refusal_closes_the_window_whatever_the_counts_say():
    w = opened()
    w.refused(T0 + 50)
    assert w.state(T0 + 51, RULES) == CLOSED
    assert w.closed_since(T0 + 51, RULES) == T0 + 50
    assert w.hold("alice", T0 + 51, RULES)[0].startswith("reply window closed")
    w.inbound(None, T0 + 60)  # a message without a token keeps the last one
    assert w.state(T0 + 60, RULES) == OPEN
    assert w.context_token == "ctx-1"


def test_rate_limit_backs_off_doubling_capped_and_resets_on_success():
    rules = Rules(backoff_base=30.0, backoff_cap=100.0)
    w = opened()
    assert w.rate_limited(T0, rules) == 30.0
    reason, until = w.hold("alice", T0 + 1, rules)
    assert reason == "rate limited by WeChat: retrying in 29s"
    assert until == T0 + 30
    assert w.allowance(T0 + 1, rules) == 0
    assert w.hold("alice", T0 + 30, rules) is None  # the back-off is over
    assert w.rate_limited(T0 + 30, rules) == 60.0
    assert w.rate_limited(T0 + 90, rules) == 100.0
    assert w.rate_limited(T0 + 190, rules) == 100.0
    assert w.backoff_left(T0 + 200) == 90.0
    w.sent(T0 + 300, rules)
    assert w.backoff == 0 and w.backoff_left(T0 + 300) == 0.0
    assert w.rate_limited(T0 + 301, rules) == 30.0


def test_default_backoff_is_30_s_capped_at_30_min():
    w = opened()
    steps = [w.rate_limited(T0, Rules()) for _ in range(8)]
    assert steps == [30, 60, 120, 240, 480, 960, 1800, 1800]


def test_session_expiry_is_news_once_and_holds_with_the_fix():
    w = opened()
    assert w.session_expired() is True
    assert w.session_expired() is False
    assert w.state(T0, RULES) == EXPIRED
    reason, until = w.hold("alice", T0, RULES)
    assert reason == "link expired: run `lcbot user link alice`"
    assert until is None
    w.inbound("ctx-9", T0 + 1)  # a message does not renew a session: only a new scan
    assert w.state(T0 + 1, RULES) == EXPIRED


def test_nudge_once_per_inbound_message_while_the_window_is_open():
    w = opened()
    assert not w.wants_nudge(T0 + 1799, RULES)
    assert w.wants_nudge(T0 + 1800, RULES)
    w.nudged = True
    assert not w.wants_nudge(T0 + 1900, RULES)
    w.inbound("ctx-2", T0 + 2000)
    assert w.wants_nudge(T0 + 3800, RULES)
    assert not w.wants_nudge(T0 + 2000 + 3600, RULES)  # closed by then: too late
    assert not opened().wants_nudge(T0 + 1800, Rules(window=3600.0, nudge=None))


def test_no_nudge_when_the_budget_is_used():
    w = opened()
    for _ in range(3):
        w.sent(T0, RULES)
    assert not w.wants_nudge(T0 + 1800, RULES)


def test_window_round_trips_through_json_and_bad_fields_default():
    w = opened()
    w.sent(T0 + 1, RULES)
    w.rate_limited(T0 + 2, RULES)
    assert Window.from_json(json.loads(json.dumps(w.to_json()))) == w
    bad = Window.from_json({"replies": "x", "closed": 1, "last_inbound": True, "extra": 3})
    assert bad == Window()


def test_state_file_is_private_and_reset_by_a_new_scan(tmp_path):
    state = LinkState("bot-1", cursor="c-7")
    state.window.inbound("ctx", T0)
    assert not state.saw("m1") and state.saw("m1")
    save_state(tmp_path, "alice", state)
    path = state_path(tmp_path, "alice")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert {"bot_id", "cursor", "context_token", "last_inbound", "replies", "seen"} <= set(data)
    assert {"closed", "expired", "last_poll", "backoff_until"} <= set(data)
    again = load_state(tmp_path, "alice", "bot-1")
    assert again.cursor == "c-7" and again.seen == ["m1"]
    assert again.window.context_token == "ctx"
    fresh = load_state(tmp_path, "alice", "bot-2")
    assert fresh.cursor == "" and fresh.seen == [] and fresh.window == Window()


def test_seen_ids_are_bounded(tmp_path):
    state = LinkState("b")
    for i in range(600):
        state.saw(f"m{i}")
    assert len(state.seen) == 512 and state.seen[0] == "m88"
    assert not state.saw("m0")  # forgotten


def test_damaged_state_file_starts_afresh(tmp_path):
    path = state_path(tmp_path, "alice")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert load_state(tmp_path, "alice", "b").cursor == ""


@pytest.mark.parametrize(
    ("key", "value"),
    [("window", "soon"), ("max_replies", 0), ("nudge", "later"), ("nudge", True)],
)
def test_bad_ilink_settings_name_the_key(key, value):
    with pytest.raises(ConfigError, match=rf"lcbot.toml: ilink\.{key}: expected"):
        SCHEMA["ilink"].load({key: value}, "lcbot.toml")


def test_ilink_settings_defaults_and_nudge_off():
    section = SCHEMA["ilink"]
    values = section.load({}, "f")
    assert values["window"] == 86400.0 and values["max_replies"] == 10
    assert values["nudge"] is None
    assert section.load({"nudge": "off"}, "f")["nudge"] is None
    assert section.load({"nudge": ""}, "f")["nudge"] is None
    assert section.load({"nudge": "20h"}, "f")["nudge"] == 72000.0


def test_a_configured_base_url_wins_over_the_host_a_scan_returned(tmp_path):
    from lcbot.ilink.api import DEFAULT_BASE_URL
    from lcbot.ilink.store import Link
    from lcbot.transports.ilink import IlinkSettings, IlinkTransport

    link = Link("alice", "tok", "bot1", "https://idc.example", "wx@im.wechat", 0.0)
    official = IlinkTransport(IlinkSettings(), tmp_path)
    assert not official.settings.fixed_base
    assert official._base_for(link) == "https://idc.example"  # the scan's host
    proxy = IlinkTransport(IlinkSettings(base_url="http://127.0.0.1:9"), tmp_path)
    assert proxy.settings.fixed_base and proxy._base_for(link) is None  # [ilink] base_url
    assert IlinkSettings(base_url=DEFAULT_BASE_URL).fixed_base is False
