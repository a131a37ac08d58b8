"""Files waiting in the outbox: ``<data_dir>/files/`` holds the bytes of each file message
until it is sent (or its row is deleted).

``FileStore.save`` copies a path (or writes bytes) at call time into a new file (0600, in a
0700 folder), fsyncs it and its folder, and only then returns its key: the outbox row that
names the key is committed later, so a crash never leaves a row pointing at a missing file.
A crash between the two leaves a file no row names; ``sweep`` removes those at start.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from lcbot.commands import CommandError

FOLDER = "files"
DEFAULT_NAME = "file.bin"
MAX_NAME = 120  # characters of a file's name
CHUNK = 1 << 20  # bytes copied at a time


class FileTooLarge(CommandError, ValueError):
    """A file above ``[files] max_size``: a handler that lets it through replies
    ``<command> failed: …`` naming the limit."""


@dataclass(frozen=True)
class Stored:
    """A saved file: its key in the store, its (clean) name and its size in bytes."""

    key: str
    name: str
    size: int


def clean_name(name: str | None, default: str = DEFAULT_NAME) -> str:
    """A file name safe to show and to save: no folders, no control characters, no leading
    dots, at most ``MAX_NAME`` characters (the extension kept); ``default`` when empty."""
    text = "" if name is None else str(name)
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(
        c for c in text if unicodedata.category(c)[0] != "C" and c not in "\ufffd"
    ).strip()
    text = text.lstrip(".").strip()
    if not text:
        return default
    if len(text) > MAX_NAME:
        stem, dot, ext = text.rpartition(".")
        ext = ext if dot and 0 < len(ext) <= 16 else ""
        text = (stem if ext else text)[: MAX_NAME - len(ext) - (1 if ext else 0)].rstrip()
        text += f".{ext}" if ext else ""
    return text


def describe_size(size: int) -> str:
    """``10 MiB``, ``512 KiB`` (exact multiples), ``12.3 MiB``, else ``5,000 bytes``."""
    for unit, factor in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size / (1 << 20):.1f} MiB" if size >= 1 << 20 else f"{size:,} bytes"


class FileStore:
    """The ``files`` folder of a data dir; every method is safe from any thread."""

    def __init__(self, data_dir: Path, max_size: int, limit_by: str = "[files] max_size") -> None:
        self.folder = data_dir / FOLDER
        self.max_size = max_size
        self.limit_by = limit_by  # what sets the limit, named in the error

    def path(self, key: str) -> Path:
        return self.folder / key

    def save(self, source: str | os.PathLike[str] | bytes, name: str | None = None) -> Stored:
        """Copy ``source`` (a path, or the bytes themselves) into the store, durably.
        ``FileTooLarge`` above ``max_size``; ``OSError`` when the path cannot be read."""
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            self._check(len(data), name or DEFAULT_NAME)
            return self._write(lambda out: out.write(data), clean_name(name))
        path = Path(source)
        with path.open("rb") as src:  # opened once: the size checked is the size copied
            size = os.fstat(src.fileno()).st_size
            shown = clean_name(name, clean_name(path.name))
            self._check(size, shown)
            limit = (self.max_size, self.limit_by)
            return self._write(lambda out: _copy(src, out, limit, shown), shown)

    def _check(self, size: int, name: str) -> None:
        if size > self.max_size:
            raise FileTooLarge(_too_large(name, size, self.max_size, self.limit_by))

    def _write(self, fill, name: str) -> Stored:
        from lcbot.db import private_dir

        private_dir(self.folder)
        key = secrets.token_hex(16)
        part = self.folder / f"{key}.part"
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                fill(out)
                out.flush()
                os.fsync(out.fileno())
                size = out.tell()
            os.replace(part, self.path(key))
        except BaseException:
            with contextlib.suppress(OSError):
                part.unlink()
            raise
        _sync_dir(self.folder)
        return Stored(key, name, size)

    def remove(self, key: str) -> None:
        """Delete a file (gone already: nothing to do)."""
        with contextlib.suppress(FileNotFoundError):
            self.path(key).unlink()

    def sweep(self, keep: set[str]) -> int:
        """Delete every file whose key is not in ``keep`` (at start: files of sent rows,
        or written just before a crash, before their row was stored); returns how many."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return 0
        gone = 0
        for name in names:
            if name not in keep:
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    (self.folder / name).unlink()
                    gone += 1
        return gone


def _copy(src, out, limit: tuple[int, str], name: str) -> None:
    copied = 0
    while chunk := src.read(CHUNK):
        copied += len(chunk)
        if copied > limit[0]:  # the file grew while it was copied
            raise FileTooLarge(_too_large(name, copied, *limit))
        out.write(chunk)


def _too_large(name: str, size: int, limit: int, limit_by: str) -> str:
    return f"file {name} is {describe_size(size)}; the limit is {describe_size(limit)} ({limit_by})"


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
