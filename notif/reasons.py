"""Why something was not sent (or not yet), as stable codes.

Two places use them. A delivery row that is skipped keeps its code in ``reason_code`` (its
``last_error`` keeps the sentence): the outbox decides opt-outs, flags and missing channels,
a channel's :class:`~notif.errors.Skipped` carries its own. The trace
(:mod:`notif.trace`: ``GET /api/messages/{key}``, ``notif trace``) answers every code in
:data:`CODES` as ``"reason": {"code": …, "text": …, …}``; they are a contract (README ›
Why didn't user X get Y?): add codes, never rename one.
"""
from __future__ import annotations

# -- what a skipped row keeps (notif_delivery.reason_code) --------------------------------
OPTED_OUT = "opted_out"  # rows skipped before 0011 said which opt-out only in their text
OPTED_OUT_BY = {"channel": "opted_out_channel", "type": "opted_out_type", "type_channel": "opted_out_type_channel"}
CHANNEL_OFF = "channel_off"
CHANNEL_UNAVAILABLE = "channel_unavailable"
NO_PUSH_SUBSCRIPTION = "no_push_subscription"
NO_EMAIL_ADDRESS = "no_email_address"
SKIPPED = "skipped"  # a channel's own reason (its text says which)

#: every ``reason.code`` the trace answers, with what it means
CODES: dict[str, str] = {
    "opted_out": "the user opted out: `preference` says which (channel, type, type_channel) and `setting` names it",
    "channel_off": "the channel is turned off by a feature flag (NOTIF_FEATURES)",
    "channel_unavailable": "the channel is not installed or is disabled (NOTIF_DISABLE_PLUGINS)",
    "no_push_subscription": "skipped: the user has no push subscription",
    "no_email_address": "skipped: no email address for the user",
    "skipped": "skipped by the channel; `text` says why",
    "rate_limited": "over the user's rate limit for the channel: deferred `until`",
    "held_in_digest": "an item of digest `digest_id`, sent as that digest (`digest_notification_id` once it closed)",
    "scheduled": "a scheduled send: held `until` its send_at",
    "cancelled": "a cancel withdrew it before it went out (`at`); cancelled notifications are deleted",
    "retracted": "its producer retracted it (`at`) before this went out",
    "expired": "it expired (`at`) before this went out",
    "failed": "gave up: a permanent error or the retries ran out (`error`); a dead letter (`dead_letter`)",
    "discarded": "gave up, then purged from the dead letters",
    "shadow": "shadow mode (NOTIF_SHADOW): recorded as what would have been sent, not sent",
    "queued": "pending: a worker will send it",
    "retrying": "an attempt failed (`error`); the next is due `until`",
    "sending": "a worker is sending it now",
    "fanning_out": "the topic message has not reached this subscriber yet",
    "not_a_recipient": "no notification with this key for the user (not a recipient, or subscribed too late)",
}


def opted_out(kind: str, type_: str | None, channel: str) -> tuple[str, str]:
    """(code, sentence) for a row the user's opt-out of ``kind`` (:meth:`Preference.opted_out`) skips."""
    if kind == "channel":
        return OPTED_OUT_BY[kind], f"preference: the user opted out of the {channel} channel (channels.{channel})"
    if kind == "type":
        return OPTED_OUT_BY[kind], f"preference: the user opted out of {type_} notifications (types.{type_})"
    return (OPTED_OUT_BY["type_channel"],
            f"preference: the user opted out of {type_} notifications by {channel} (type_channels.{type_}.{channel})")


def preference_of(code: str | None) -> str | None:
    """The opt-out kind a stored code names (None: not an opt-out, or a row from before 0011)."""
    return next((kind for kind, stored in OPTED_OUT_BY.items() if stored == code), None)
