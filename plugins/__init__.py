"""notif's built-in channel plugins, installed as ``notif_plugins``.

Each module is registered through the ``notif.plugins`` entry-point group in setup.cfg,
exactly as a third-party plugin would be.
"""
