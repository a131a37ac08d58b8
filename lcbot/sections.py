"""Each plugin's section of lcbot.toml: checked when the plugin declares a schema
(``lcbot_config_schema``), raw otherwise; a plugin without one gets ``{}``."""

from __future__ import annotations

import logging
from typing import Any

from lcbot.config import Config
from lcbot.plugins import PluginHost
from lcbot.setting import Section

log = logging.getLogger("lcbot.app")


class Sections(dict):
    """Plugin sections by name; a plugin without one gets ``{}``."""

    def get(self, name: str, default: Any = None) -> dict[str, Any]:  # type: ignore[override]
        return super().get(name, {} if default is None else default)


def plugin_sections(plugins: PluginHost, config: Config) -> Sections:
    """Each plugin's configuration (ConfigError, exit 2, on a bad declared section)."""
    sections: dict[str, dict[str, Any]] = {}
    for name, settings in plugins.config_schemas().items():
        section = Section(name, tuple(settings))
        sections[name] = section.load(config.raw.get(name), str(config.path))
        for key in section.unknown_keys(config.raw.get(name)):
            log.warning("%s: unknown key %s.%s (ignored)", config.path, name, key)
    for name in plugins.records:
        if name not in sections:
            value = config.raw.get(name, {})
            sections[name] = value if isinstance(value, dict) else {}
    return Sections(sections)
