"""Built-in commands of the command side's safety: ``audit [N]`` (root), ``approve ID``,
``deny ID`` and ``approvals`` (admin)."""

from __future__ import annotations

from lcbot.audit import line
from lcbot.hookspecs import hookimpl
from lcbot.users import Pri

AUDIT_DEFAULT, AUDIT_MAX = 10, 50


@hookimpl
def register_commands(registry):
    @registry.command("audit", pri=Pri.ROOT, usage="audit [N]", help="the last N commands run")
    def audit(ctx):
        word = (ctx.extra or "").split()[0] if ctx.extra else ""
        count = min(int(word), AUDIT_MAX) if word.isdigit() and int(word) > 0 else AUDIT_DEFAULT
        rows = ctx.bot.audit.recent(count)  # this very `audit` is stored once it is done
        return "\n".join(line(r) for r in reversed(rows)) if rows else "no commands audited yet"

    @registry.command(
        "approve", pri=Pri.ADMIN, usage="approve ID", help="approve another's request"
    )
    async def approve(ctx):
        if not ctx.extra:
            return _waiting(ctx)
        return ctx.bot.approvals.approve(ctx.extra.split()[0], ctx.user)

    @registry.command("deny", pri=Pri.ADMIN, usage="deny ID", help="refuse a request")
    async def deny(ctx):
        if not ctx.extra:
            return "usage: deny ID"
        return ctx.bot.approvals.deny(ctx.extra.split()[0], ctx.user)

    @registry.command("approvals", pri=Pri.ADMIN, help="requests waiting for approval")
    async def approvals(ctx):
        return _waiting(ctx)


def _waiting(ctx) -> str:
    lines = ctx.bot.approvals.waiting()
    return "\n".join(["waiting for approval:", *lines]) if lines else "no request waits"
