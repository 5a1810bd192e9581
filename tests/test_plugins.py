import re

from helpers import ROOT
from notif import hookspecs
from notif.config import load_settings
from notif.plugin_manager import get_plugin_manager, load_channels


def test_builtin_channels_are_loaded_through_their_entry_points():
    settings = load_settings({}, use_state=False)
    pm = get_plugin_manager(settings)
    assert {"in_app", "push"} <= set(dict(pm.list_name_plugin()))
    assert {"in_app", "push"} <= set(load_channels(pm, settings))


def test_a_channel_can_be_blocked_by_name():
    settings = load_settings({"NOTIF_DISABLE_PLUGINS": "push"}, use_state=False)
    channels = load_channels(get_plugin_manager(settings), settings)
    assert "push" not in channels and "in_app" in channels


def test_every_hook_is_documented():
    hooks = [name for name in dir(hookspecs) if name.startswith("notif_")]
    assert hooks, "no hooks found"
    docs = (ROOT / "docs" / "plugins.md").read_text()
    documented = set(re.findall(r"^### `(\w+)\(", docs, re.M))
    assert set(hooks) == documented
    for name in hooks:
        assert getattr(hookspecs, name).__doc__, f"{name} has no docstring"


def test_a_hook_that_matches_no_spec_fails_start_up_clearly(monkeypatch):
    import sys

    import pytest

    from notif.errors import ConfigError
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "plugins"))
    settings = load_settings({"NOTIF_PLUGINS": "notif_test_typo"}, use_state=False)
    with pytest.raises(ConfigError) as info:
        get_plugin_manager(settings)
    assert "notif_chanels" in str(info.value) and "notif_channels" in str(info.value)
    sys.modules.pop("notif_test_typo", None)
