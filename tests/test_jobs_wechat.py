"""A job on WeChat end to end: a real job process (``lcbot.job``) beside a real ``lcbot run
--transport wechaty`` on the Node puppet-service test server; a contact steers the job in
chat and the replies arrive at the server. Bounded waits only."""

from __future__ import annotations

import os
import textwrap

import pytest

from tests.test_jobs_e2e import CRAWLER, start_job, stop_job
from tests.wechat_kit import BOB, CAROL, ME, project_with_users, wait_text

pytestmark = pytest.mark.wechat


def test_a_job_command_over_wechat(server, wechat_bot, tmp_path):
    project = project_with_users(tmp_path / "p")
    (project / "crawler.py").write_text(textwrap.dedent(CRAWLER))
    wechat_bot(project)
    crawler = start_job(project, "crawler.py")
    try:
        told = f"crawler on {os.uname().nodename} connected (pid {crawler.pid})"
        wait_text(server, ME, lambda t: t == told, "the connect notice")
        server.say(BOB, "crawler interval:30")
        wait_text(server, BOB, lambda t: t == "changing the interval", "the job's extra reply")
        wait_text(server, BOB, lambda t: t == "interval is now 30s", "the job's reply")
        server.say(CAROL, "crawler interval:5")  # a plain user: the admin command is refused
        wait_text(server, CAROL, lambda t: t == "not allowed: crawler.interval", "the refusal")
        server.say(CAROL, "crawler")
        wait_text(server, CAROL, lambda t: "pages, interval 30s" in t, "the job's status")
    finally:
        stop_job(crawler)
    gone = f"crawler on {os.uname().nodename} is gone after"
    wait_text(server, BOB, lambda t: t.startswith(gone), "the gone notice")
