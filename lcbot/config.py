"""lcbot.toml: find it, load and validate it, and save edits safely.

* ``locate()``: ``--config``, then ``$LCBOT_CONFIG``, then ``./lcbot.toml``.
* ``load()``: parse (errors name file, line and column) and validate into ``Config``.
* ``edit()``: a context manager for read-modify-write under an exclusive lock shared by
  every lcbot process; the new text is validated, then written atomically (temp file in
  the same folder, fsync, ``os.replace``). If anything fails, the file is left untouched.

The raw TOML document is kept in ``Config.raw`` so that sections and keys lcbot does not
know survive a save. tomli-w does not write comments: saving keeps only ``HEADER``.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lcbot.errors import ConfigError
from lcbot.users import User, parse_users

if TYPE_CHECKING:  # pragma: no cover
    from lcbot.rooms import Room

CONFIG_ENV = "LCBOT_CONFIG"
DEFAULT_NAME = "lcbot.toml"
BOM = b"\xef\xbb\xbf"  # UTF-8 byte order mark: accepted at the start of the file

HEADER = (
    "# lcbot configuration. Reference: the Configuration section of lcbot's README.\n"
    "# `lcbot user ...` and other CLI edits rewrite this file and do not keep comments.\n\n"
)


@dataclass(frozen=True)
class BotSettings:
    """``[bot]`` (paths made absolute)."""

    name: str = "lcbot"
    transport: str = "auto"
    data_dir: Path = Path(".lcbot")
    workers: int = 8
    slow_notice: float = 10.0
    stop_timeout: float = 10.0


@dataclass(frozen=True)
class PluginSettings:
    """``[plugins]``: folders to load ``.py`` plugins from, and plugin names to skip."""

    dirs: tuple[Path, ...] = ()
    disable: tuple[str, ...] = ()


@dataclass
class Config:
    """A validated lcbot.toml. Paths are absolute (relative ones are from the file's folder)."""

    path: Path
    raw: dict[str, Any] = field(default_factory=dict)
    bot: BotSettings = field(default_factory=BotSettings)
    users: list[User] = field(default_factory=list)
    rooms: list[Room] = field(default_factory=list)  # group chats that receive alerts
    plugins: PluginSettings = field(default_factory=PluginSettings)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # section → checked values

    def section(self, name: str) -> dict[str, Any]:
        """A raw top-level table (``{}`` when absent), for sections owned by plugins."""
        value = self.raw.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{self.path}: [{name}] must be a table")
        return value

    def unknown_keys(self) -> list[str]:
        """``section.key`` of every key lcbot does not know in a section it knows."""
        from lcbot.schema import SCHEMA

        return [
            f"{name}.{key}"
            for name, section in SCHEMA.items()
            for key in section.unknown_keys(self.raw.get(name))
        ]


def locate(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The config path to use: the explicit one, then ``$LCBOT_CONFIG``, then ``./lcbot.toml``."""
    chosen = explicit or os.environ.get(CONFIG_ENV) or DEFAULT_NAME
    return Path(chosen).expanduser().absolute()


def _toml():
    """tomllib (tomli on 3.10), imported on first use: commands like --help never need it."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    return tomllib


def parse_text(text: str, path: Path) -> dict[str, Any]:
    """Parse TOML text; a syntax error becomes a ConfigError naming file, line and column."""
    try:
        return _toml().loads(text)
    except _toml().TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column (\d+)\)", message)
        if match:
            line, col = int(match[1]), int(match[2])
        else:  # "(at end of document)"
            lines = text.split("\n")
            line, col = len(lines), len(lines[-1]) + 1
        reason = re.sub(r"\s*\(at [^)]*\)\s*$", "", message)
        raise ConfigError(f"{path}:{line}:{col}: invalid TOML: {reason}") from None


def read_raw(path: Path) -> dict[str, Any]:
    """Read and parse a config file without validating it."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"no configuration file at {path}; create one with `lcbot init` "
            f"(or point --config / ${CONFIG_ENV} at yours)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    bom = len(BOM) if data.startswith(BOM) else 0  # Windows editors write one; saves drop it
    try:
        text = data[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {bom + exc.start})") from None
    return parse_text(text, path)


def validate(raw: dict[str, Any], path: Path) -> Config:
    """Check every section lcbot knows (``lcbot.schema``) and build a Config; ConfigError
    names the file and the bad key."""
    from lcbot.oncall import rota_from_settings
    from lcbot.rooms import parse_rooms
    from lcbot.schema import SCHEMA

    settings = {name: section.load(raw.get(name), str(path)) for name, section in SCHEMA.items()}
    base = path.parent
    bot = settings["bot"]
    bot_settings = BotSettings(
        name=bot["name"],
        transport=bot["transport"],
        data_dir=base / bot["data_dir"],
        workers=bot["workers"],
        slow_notice=bot["slow_notice"],
        stop_timeout=bot["stop_timeout"],
    )
    plugin_settings = PluginSettings(
        dirs=tuple(base / d for d in settings["plugins"]["dirs"]),
        disable=settings["plugins"]["disable"],
    )
    users = parse_users(raw.get("users"), str(path))
    rooms = parse_rooms(raw.get("rooms"), str(path))
    rota_from_settings(settings["oncall"], [u.name for u in users], str(path))  # checked
    return Config(
        path=path,
        raw=raw,
        bot=bot_settings,
        users=users,
        rooms=rooms,
        plugins=plugin_settings,
        settings=settings,
    )


def load(explicit: str | os.PathLike[str] | None = None) -> Config:
    """Locate, read and validate the configuration."""
    path = locate(explicit)
    return validate(read_raw(path), path)


def _is_plain_table_array(value: Any) -> bool:
    """A non-empty list of tables holding no nested tables: written as ``[[name]]`` blocks."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(t, dict) for t in value)
        and not any(isinstance(v, dict | list) and _has_table(v) for t in value for v in t.values())
    )


def _has_table(value: Any) -> bool:
    if isinstance(value, dict):
        return True
    return isinstance(value, list) and any(_has_table(v) for v in value)


def _toml_key(key: str) -> str:
    """A bare key, or a basic string with TOML's escapes (controls and DEL as \\uXXXX)."""
    if re.fullmatch(r"[A-Za-z0-9_-]+", key):
        return key
    escaped = "".join(
        "\\" + ch
        if ch in '"\\'
        else f"\\u{ord(ch):04x}"
        if ord(ch) < 0x20 or ord(ch) == 0x7F
        else ch
        for ch in key
    )
    return f'"{escaped}"'


def render(raw: dict[str, Any]) -> str:
    """The text that saving writes for a raw document.

    tomli-w would write ``[[users]]`` as one inline array; small arrays of tables are
    written as ``[[name]]`` blocks instead, in the document's key order, so the file stays
    readable. ``tomllib.loads(render(raw)) == raw`` holds for any document.
    """
    import tomli_w

    def is_block(v: Any) -> bool:
        return isinstance(v, dict) or _is_plain_table_array(v)

    top = {k: v for k, v in raw.items() if not is_block(v)}
    chunks = [tomli_w.dumps(top)] if top else []
    for key, value in raw.items():
        if isinstance(value, dict):
            chunks.append(tomli_w.dumps({key: value}))
        elif _is_plain_table_array(value):
            chunks.extend(f"[[{_toml_key(key)}]]\n{tomli_w.dumps(entry)}" for entry in value)
    return HEADER + "\n".join(chunk.rstrip("\n") + "\n" for chunk in chunks)


def _cannot_write(path: Path, exc: OSError) -> ConfigError:
    """A one-line ConfigError for an OSError met while saving ``path`` (left unchanged)."""
    import errno

    hint = ""
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = f"; edits need write access to the folder {path.parent} (lock file, new copy)"
    where = exc.filename or path
    return ConfigError(
        f"cannot write {path}: {exc.strerror or exc}: {where}{hint}; nothing was changed"
    )


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically: same-folder temp file, fsync, os.replace.

    A new file is 0600; an existing one keeps its mode. ``ConfigError`` (``path`` untouched)
    when the folder is not writable, the disk is full, …"""
    import tempfile

    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _cannot_write(path, exc) from None
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the exclusive cross-process lock that guards edits of ``path``."""
    import fcntl

    lock_path = path.with_name(path.name + ".lock")
    try:
        handle = open(lock_path, "a")  # noqa: SIM115 - closed by the with block below
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    with handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def edit(explicit: str | os.PathLike[str] | Path | None = None) -> Iterator[dict[str, Any]]:
    """Read-modify-write the config under the lock; yields the raw document to change.

    The document is validated after the change; nothing is written if the file was
    invalid to begin with, if the block raises, or if the result does not validate.
    """
    path = locate(explicit).resolve()  # a symlinked lcbot.toml: edit the file it points to
    if not path.exists():
        read_raw(path)  # raises the "run lcbot init" hint before a lock file is created
    with locked(path):
        raw = read_raw(path)
        validate(raw, path)
        yield raw
        validate(raw, path)
        write_atomic(path, render(raw))


def create(path: Path, raw: dict[str, Any]) -> None:
    """Write a new config file; refuses to overwrite an existing one."""
    validate(raw, path)
    if not path.parent.is_dir():
        raise ConfigError(f"cannot create {path}: the folder {path.parent} does not exist")
    with locked(path):
        if path.exists():
            raise ConfigError(f"{path} already exists; not overwriting it")
        write_atomic(path, render(raw))
