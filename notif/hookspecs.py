"""Hook specifications: what a notif plugin can provide.

A plugin is a module or object with functions marked ``@notif.hookimpl``, registered
through the ``notif.plugins`` entry-point group (the built-in channels are registered the
same way). Every hook is documented here and in docs/plugins.md.
"""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("notif")
hookimpl = pluggy.HookimplMarker("notif")


@hookspec
def notif_channels(settings):
    """Return the channels this plugin provides, as a list of :class:`notif.channels.Channel`.

    ``settings`` is the process's :class:`notif.config.Settings`. A channel whose
    configuration is missing may return nothing (and log why) rather than fail.
    """


@hookspec
def notif_template_dirs(settings):
    """Return directories (``str`` or ``Path``) holding templates this plugin ships.

    They are searched after ``NOTIF_TEMPLATES_DIR`` and before the built-in templates.
    """


@hookspec
def notif_email_address(user_id, settings):
    """Return the email address of ``user_id``, or None if this plugin does not know it.

    Used by the email channel when the message did not carry the address itself
    (``recipients: [{"user_id": …, "email": …}]``). The first non-None answer wins.
    """
