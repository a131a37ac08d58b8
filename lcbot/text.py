"""Text as it goes out: storable, bounded, split into parts — each in linear time.

* ``clean_text``: what SQLite and WeChat can store (undecodable bytes become U+FFFD);
* ``truncate``: at most N characters, the cut said with a visible marker;
* ``split_text``: parts of at most ``max_chars``, cut at line breaks where possible, at most
  ``max_parts`` of them (the last one truncated when the text is longer);
* ``quote``: user input echoed in a reply, at most ~100 characters of it.
"""

from __future__ import annotations

QUOTE = 100  # characters of user input a reply may echo


def clean_text(text: str) -> str:
    """Text SQLite and WeChat can store: lone surrogates (undecodable bytes) become U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def marker(cut: int) -> str:
    return f"… (truncated {cut:,} characters)"


def truncate(text: str, limit: int) -> str:
    """``text`` if it is at most ``limit`` characters, else its start and a marker saying how
    much was cut (the result is at most ``limit`` characters, the marker included)."""
    if len(text) <= limit:
        return text
    keep = limit - len(marker(len(text)))
    if keep < 1:  # a tiny limit: the marker alone would not fit
        return text[: limit - 1] + "…"
    keep = limit - len(marker(len(text) - keep))  # the count may have fewer digits
    return text[:keep] + marker(len(text) - keep)


def quote(text: str, limit: int = QUOTE) -> str:
    """User input to echo in a reply: at most ``limit`` characters, then ``…``."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def split_text(text: str, max_chars: int, max_parts: int | None = None) -> list[str]:
    """Cut ``text`` into parts of at most ``max_chars``, at line breaks where possible (the
    break itself is dropped), in one pass. With ``max_parts``, the last allowed part holds
    as much of the rest as fits, ending with a truncation marker."""
    parts: list[str] = []
    start, end = 0, len(text)
    while start < end:
        if max_parts is not None and len(parts) == max_parts - 1:
            parts.append(truncate(text[start:], max_chars))
            return parts
        stop = start + max_chars
        if stop >= end:
            parts.append(text[start:])
            break
        cut = text.rfind("\n", start, stop + 1)  # a break right after a full part is fine too
        if cut <= start:  # no break in reach: a hard cut
            parts.append(text[start:stop])
            start = stop
        else:
            parts.append(text[start:cut])
            start = cut + 1
    return parts or [""]
