"""Migration 0012: the webhook events table, up, down and up again, on PostgreSQL and SQLite."""
from notif.db import database
from notif.migrations import DOWN_LOSES, current_version, migrate
from notif.models import WebhookEvent
from test_migrations import fresh_db  # noqa: F401  (the fixture: an empty database of its own)


def test_0012_makes_the_webhook_outbox_and_takes_it_away(fresh_db):  # noqa: F811
    migrate(to=10)
    assert not database.table_exists("notif_webhook_event")
    assert any(step.startswith("0012 up") for step in migrate())
    assert {c.name for c in database.get_columns("notif_webhook_event")} >= {
        "webhook_id", "type", "endpoint", "body", "status", "attempts", "last_error", "next_attempt_at", "sent_at"}
    assert any(i.columns == ["status", "updated_at"] for i in database.get_indexes("notif_webhook_event"))
    WebhookEvent.create(webhook_id="msg_1", type="notification.read", endpoint="https://h.example/x", body="{}")
    assert "never sent" in DOWN_LOSES[12]
    migrate(to=10)
    assert current_version() == 10 and not database.table_exists("notif_webhook_event")
    migrate()
    assert WebhookEvent.select().count() == 0
