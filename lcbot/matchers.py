"""Label matchers with Alertmanager's syntax and semantics: ``name="v"``, ``name=v``,
``name!=v``, ``name=~regex``, ``name!~regex``.

As Alertmanager's classic matchers (``pkg/labels/parse.go``, documented under "Label
matchers" in its configuration docs): whitespace is allowed around the operator; the value
may be double-quoted, with ``\\"``, ``\\n`` and ``\\\\`` escapes (another ``\\`` is literal),
and an unescaped ``"`` inside it is an error; a value may be empty; regexes are fully
anchored (``^(?:regex)$``); a missing label is the empty string, so ``host=""`` matches
alerts without ``host`` and ``host!=""`` those that have one. Several matchers all have to
match (``matches_all``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

OPERATORS = ("=~", "!~", "!=", "=")  # two-character ones first, as Alertmanager does
MAX_MATCHER = 1000  # characters of one matcher's text
MAX_NESTED = 10  # the largest bound of a repetition of something of variable length
_FORM = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*", re.S)


class InvalidMatcher(ValueError):
    """A matcher that cannot be parsed; the message is one line quoting it."""


@dataclass(frozen=True)
class Matcher:
    """One matcher: ``name``, ``op`` (one of ``OPERATORS``) and ``value``."""

    name: str
    op: str
    value: str
    regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether the label set matches; a missing label counts as ``""``."""
        value = labels.get(self.name, "")
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        assert self.regex is not None
        found = self.regex.fullmatch(value) is not None
        return found if self.op == "=~" else not found

    def matches_empty(self) -> bool:
        """Whether a positive matcher (``=``, ``=~``) matches the empty string — a silence of
        such matchers only would silence nearly everything; negative ones count as not
        matching it, as in Alertmanager's silence validation (``matchesEmpty``)."""
        return self.op in ("=", "=~") and self.matches({})

    def __str__(self) -> str:
        """The canonical text: ``name="value"``, quoted and escaped (it parses back)."""
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{escaped}"'


def new_matcher(name: str, op: str, value: str) -> Matcher:
    """A matcher from its parts (a regex is compiled here: ``InvalidMatcher`` if it is bad)."""
    if op not in OPERATORS:
        raise InvalidMatcher(f"unknown matcher operator {op!r}; use =, !=, =~ or !~")
    regex = None
    if op in ("=~", "!~"):
        try:
            flags = re.match(r"\(\?[imsU]+\)", value)  # Go's leading flags stay in front
            head = flags.group(0).replace("U", "") if flags else ""
            body = value[flags.end() :] if flags else value
            regex = re.compile(f"{head if head != '(?)' else ''}(?:{body})")
        except re.error as exc:
            raise InvalidMatcher(f"bad regex in matcher {name}{op}{value!r}: {exc}") from None
        if reason := risky_regex(regex.pattern):
            raise InvalidMatcher(f"regex in matcher {name}{op}{value!r} {reason}")
    return Matcher(name, op, value, regex)


def risky_regex(pattern: str) -> str | None:
    """Why ``pattern`` could backtrack for very long in Python's ``re`` (which, unlike
    Alertmanager's RE2, has no linear-time guarantee), or None. Refused: a repetition
    without a small bound (``*``, ``+``, ``{2,}``, ``{1,50}``) of something of variable
    length (``(a+)+``, ``(a|aa)*``, ``(a?){30}``), such repetitions nested, and
    backreferences (RE2 has none). What is left is polynomial in the value's length, and
    values are at most ``lcbot.alerts.MAX_LABEL_VALUE`` characters."""
    try:
        from re import _parser as parser  # type: ignore[attr-defined]
    except ImportError:  # Python 3.10
        import sre_parse as parser  # type: ignore[no-redef]
    try:
        _shape(parser.parse(pattern))
    except _Risky as exc:
        return str(exc)
    return None


class _Risky(Exception):
    pass


def _shape(items) -> tuple[bool, bool]:
    """``(variable, bounded_nest)`` of parsed regex items: whether they match texts of
    different lengths, and whether they hold a small repetition of a variable part."""
    variable = nest = False
    for op, arg in items:
        name = str(op)
        if name == "GROUPREF" or name == "GROUPREF_EXISTS":
            raise _Risky("uses a backreference (Alertmanager's regexes have none)")
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, body = arg
            inner, inner_nest = _shape(body)
            if inner and high > 1:
                if high > MAX_NESTED or inner_nest:
                    raise _Risky(
                        "repeats a part of variable length (such as (a+)+ or (a|b)*), which "
                        "can take very long; write a character class instead, e.g. [ab]*"
                    )
                nest = True
            variable = variable or inner or low != high
            nest = nest or inner_nest
        elif name == "BRANCH":
            variable = True
            for alternative in arg[1]:
                nest = _shape(alternative)[1] or nest
        elif name in ("SUBPATTERN", "ATOMIC_GROUP", "ASSERT", "ASSERT_NOT"):
            inner, inner_nest = _shape(arg if name == "ATOMIC_GROUP" else arg[-1])
            variable, nest = variable or inner, nest or inner_nest
    return variable, nest


def _unquote(raw: str, text: str) -> str:
    """The value of a matcher with Alertmanager's (OpenMetrics) escapes resolved."""
    quoted = raw.startswith('"')
    if quoted:
        raw = raw[1:]
    out: list[str] = []
    i, closed = 0, not quoted
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw):
            nxt = raw[i + 1]
            out.append({"n": "\n", '"': '"', "\\": "\\"}.get(nxt, "\\" + nxt))
            i += 2
            continue
        if ch == '"':
            if not quoted or i != len(raw) - 1:
                raise InvalidMatcher(f"matcher value contains an unescaped double quote: {text}")
            closed = True
        else:
            out.append(ch)
        i += 1
    if not closed:
        raise InvalidMatcher(f"matcher value lacks its closing double quote: {text}")
    return "".join(out)


def parse_matcher(text: str) -> Matcher:
    """One matcher from its text, e.g. ``alertname=~"Disk.*"``; ``InvalidMatcher`` says why not."""
    if not isinstance(text, str):
        raise InvalidMatcher(f"a matcher must be a text, not {type(text).__name__}")
    if len(text) > MAX_MATCHER:
        raise InvalidMatcher(f"a matcher is at most {MAX_MATCHER} characters")
    found = _FORM.fullmatch(text)
    if found is None:
        raise InvalidMatcher(
            f"bad matcher {text.strip()!r}: expected NAME=VALUE, NAME!=VALUE, NAME=~REGEX or "
            "NAME!~REGEX (a name is letters, digits and _)"
        )
    name, op, raw = found.groups()
    return new_matcher(name, op, _unquote(raw, text.strip()))


def parse_matchers(texts: Iterable[str]) -> tuple[Matcher, ...]:
    """Each text one matcher (a list as in ``source_matchers``)."""
    return tuple(parse_matcher(text) for text in texts)


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """Whether every matcher matches ``labels`` (no matchers: always)."""
    return all(m.matches(labels) for m in matchers)


def looks_like_matcher(word: str) -> bool:
    """Whether a word of a command is meant as a matcher (it has an operator after a name)."""
    return re.match(r"\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=~|!~|!=|=)", word) is not None


def split_words(text: str) -> list[str]:
    """Split a command's text at whitespace outside double quotes (a ``\\"`` does not end a
    quoted part): ``host=db1 msg="a b"`` → ``['host=db1', 'msg="a b"']``."""
    words: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch.isspace() and not quoted:
            if current:
                words.append("".join(current))
                current = []
            continue
        current.append(ch)
    if current:
        words.append("".join(current))
    return words
