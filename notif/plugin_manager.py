"""The plugin manager: loads channel plugins from the ``notif.plugins`` entry points."""
from __future__ import annotations

import functools
import importlib
from pathlib import Path

import pluggy

from . import hookspecs
from .channels import Channel
from .config import Settings
from .errors import ConfigError

ENTRY_POINT_GROUP = "notif.plugins"


def get_plugin_manager(settings: Settings) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("notif")
    pm.add_hookspecs(hookspecs)
    for name in settings.disable_plugins:
        pm.set_blocked(name)
    pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for module_name in settings.plugins:  # a local plugin, no packaging needed
        if pm.is_blocked(module_name) or pm.get_plugin(module_name) is not None:
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"NOTIF_PLUGINS names {module_name!r}, which cannot be imported: {exc}") from None
        pm.register(module, name=module_name)
    try:
        pm.check_pending()  # an implementation matching no hook is a typo: fail at start-up
    except pluggy.PluginValidationError as exc:
        hooks = ", ".join(sorted(n for n in dir(hookspecs) if n.startswith("notif_")))
        name = pm.get_name(exc.plugin) or repr(exc.plugin)
        raise ConfigError(f"plugin {name!r} does not fit notif: {exc}; notif's hooks are {hooks} "
                          f"(see docs/plugins.md)") from None
    return pm


def load_channels(pm: pluggy.PluginManager, settings: Settings) -> dict[str, Channel]:
    channels: dict[str, Channel] = {}
    for provided in pm.hook.notif_channels(settings=settings):
        for channel in provided or ():
            if not getattr(channel, "name", ""):
                raise ConfigError(f"plugin channel {channel!r} has no name")
            if channel.name in channels:
                raise ConfigError(f"two plugins provide a channel named {channel.name!r}")
            channels[channel.name] = channel
    return channels


def template_dirs(pm: pluggy.PluginManager, settings: Settings) -> list[Path]:
    return [Path(d) for found in pm.hook.notif_template_dirs(settings=settings) for d in (found or ())]


@functools.cache
def _cached(settings: Settings) -> tuple[pluggy.PluginManager, dict[str, Channel]]:
    pm = get_plugin_manager(settings)
    return pm, load_channels(pm, settings)


def channels_for(settings: Settings) -> dict[str, Channel]:
    """The channels available in this process (loaded once per settings object)."""
    return _cached(settings)[1]


def manager_for(settings: Settings) -> pluggy.PluginManager:
    return _cached(settings)[0]
