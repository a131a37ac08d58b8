"""Label matchers: the same parse results and match results as Alertmanager's classic
matchers for the same inputs. Cases from prometheus/alertmanager pkg/labels/parse_test.go
(TestMatchers) and matcher_test.go (TestMatcher); semantics from its configuration docs,
"Label matchers" ("Classic matchers": OpenMetrics escapes, an empty value allowed, an
unescaped quote only first or last) and pkg/labels/matcher.go (regexes ``^(?:…)$``)."""

from __future__ import annotations

import pytest

from lcbot.matchers import InvalidMatcher, parse_matcher, split_words

PARSED = [  # input → (name, op, value), as Alertmanager parses it
    ("foo=bar", ("foo", "=", "bar")),
    ('foo="bar"', ("foo", "=", "bar")),
    ("foo=~bar.*", ("foo", "=~", "bar.*")),
    ('foo=~"bar.*"', ("foo", "=~", "bar.*")),
    ("foo!=bar", ("foo", "!=", "bar")),
    ('foo!="bar"', ("foo", "!=", "bar")),
    ("foo!~bar.*", ("foo", "!~", "bar.*")),
    ('foo!~"bar.*"', ("foo", "!~", "bar.*")),
    ('foo=""', ("foo", "=", "")),
    ("job=", ("job", "=", "")),
    ("foo='", ("foo", "=", "'")),
    ('foo=\\"', ("foo", "=", '"')),
    ('foo = "bar"', ("foo", "=", "bar")),
    ('quote="She said: \\"Hi, ladies!\\""', ("quote", "=", 'She said: "Hi, ladies!"')),
    ('statuscode=~"5.."', ("statuscode", "=~", "5..")),
    ("tricky=~~~", ("tricky", "=~", "~~")),
    ('trickier==\\\\=\\=\\"', ("trickier", "=", '=\\=\\="')),
    ("foo=bar\\t", ("foo", "=", "bar\\t")),  # a spurious escape stays literal
    ("foo=bar\\n", ("foo", "=", "bar\n")),
    ("foo=bar\\", ("foo", "=", "bar\\")),
    ("foo=bar\\\\", ("foo", "=", "bar\\")),
    ('foo=bar\\"', ("foo", "=", 'bar"')),
]


@pytest.mark.parametrize(("text", "expected"), PARSED)
def test_parse_as_alertmanager(text, expected):
    m = parse_matcher(text)
    assert (m.name, m.op, m.value) == expected
    again = parse_matcher(str(m))  # the canonical form parses back to the same matcher
    assert (again.name, again.op, again.value) == expected


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ('job="value', "closing double quote"),
        ('job=value"', "unescaped double quote"),
        ('trickier==\\\\=\\=\\""', "unescaped double quote"),
        ('contains_unescaped_quote = foo"bar', "unescaped double quote"),
        ('invalid-name = "valid label"', "bad matcher"),
        ('foo=~"invalid[regexp"', "bad regex"),
        ('"foo=\\"bar"', "bad matcher"),
        ("host", "bad matcher"),
        ("=db1", "bad matcher"),
    ],
)
def test_parse_errors_are_one_line(text, part):
    with pytest.raises(InvalidMatcher) as raised:
        parse_matcher(text)
    assert part in str(raised.value) and "\n" not in str(raised.value)


MATCHES = [  # (op, value) against a label value → match? (TestMatcher)
    ("=", "bar", "bar", True),
    ("=", "bar", "foo-bar", False),
    ("!=", "bar", "bar", False),
    ("!=", "bar", "foo-bar", True),
    ("=~", "bar", "bar", True),
    ("=~", "bar", "foo-bar", False),  # fully anchored
    ("=~", ".*bar", "foo-bar", True),
    ("!~", "bar", "bar", False),
    ("!~", "bar", "foo-bar", True),
    ("!~", ".*bar", "foo-bar", False),
    ("=~", "foo.bar", "foo-bar", True),
    ("=~", "foo\\.bar", "foo-bar", False),
    ("=~", "foo\\.bar", "foo.bar", True),
    ("=", "foo\nbar", "foo\nbar", True),
    ("=~", "foo.bar", "foo\nbar", False),
    ("=~", "(?s)foo.bar", "foo\nbar", True),
    ("=", '~!="', '~!="', True),
]


@pytest.mark.parametrize(("op", "value", "label", "expected"), MATCHES)
def test_matches_as_alertmanager(op, value, label, expected):
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    m = parse_matcher(f'x{op}"{escaped}"')
    assert m.value == value
    assert m.matches({"x": label}) is expected


def test_a_missing_label_is_the_empty_string():
    labels = {"alertname": "DiskFull"}
    assert parse_matcher('host=""').matches(labels)
    assert not parse_matcher('host!=""').matches(labels)
    assert parse_matcher("host!=db1").matches(labels)
    assert parse_matcher('host=~".*"').matches(labels)
    assert not parse_matcher('host=~".+"').matches(labels)


def test_split_words_keeps_quoted_parts():
    assert split_words('host=db1 alertname=~"Disk .*" 2h  a b') == [
        "host=db1",
        'alertname=~"Disk .*"',
        "2h",
        "a",
        "b",
    ]
    assert split_words('m="a \\" b" x') == ['m="a \\" b"', "x"]


# --- regexes that could backtrack for long in Python's re are refused ----------------------


@pytest.mark.parametrize(
    "regex", ["(a+)+", "(a|aa)*c", "(?:x*y?)+", "(a?){30}", "((a?){5}){5}", "(a)\\1"]
)
def test_risky_regexes_are_refused_with_one_line(regex):
    with pytest.raises(InvalidMatcher) as caught:
        parse_matcher(f'host=~"{regex}"')
    message = str(caught.value)
    assert "\n" not in message and message.startswith("regex in matcher host=~")


@pytest.mark.parametrize(
    ("regex", "value"),
    [
        ("Disk.*", "DiskFull"),
        ("db[0-9]+", "db12"),
        ("(?:web|api)-.*", "api-3"),
        ("[0-9]{1,3}(\\.[0-9]{1,3}){3}", "10.0.0.1"),
        ("(ab)+", "abab"),
        (".*a.*b.*c.*d", "xaybzcwd"),
    ],
)
def test_usual_regexes_still_work(regex, value):
    assert parse_matcher(f'l=~"{regex}"').matches({"l": value})


def test_the_worst_allowed_regex_on_the_longest_value_ends():
    """Polynomial at worst on a value of MAX_LABEL_VALUE characters: it finishes (a hang
    would stop the test run, not just fail it)."""
    from lcbot.alerts import MAX_LABEL_VALUE

    m = parse_matcher('l=~".*a.*b.*c.*d"')
    assert not m.matches({"l": "abc" * (MAX_LABEL_VALUE // 3)})
