"""A plugin with a misspelt hook, for the start-up check."""
from notif.hookspecs import hookimpl


@hookimpl
def notif_chanels(settings):  # (sic)
    return []
