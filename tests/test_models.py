import datetime as dt

import peewee
import pytest

from helpers import EMPTIED_AFTER_EACH_TEST
from notif import live
from notif.db import database, init_database
from notif.migrations import current_version, latest_version, migrate
from notif.models import MODELS, Delivery, Notification, utcnow


def make(user_id="u1", key="k1", **extra):
    return Notification.create(user_id=user_id, key=key, title="t", message="m", priority="normal",
                               correlation_id="c", **extra)


@pytest.fixture(params=["postgres", "sqlite"])
def any_db(request, tmp_path):
    if request.param == "postgres":
        url = request.getfixturevalue("pg")
    else:
        url = f"sqlite:///{tmp_path / 'notif.db'}"
        init_database(url)
    yield url
    database.close()


def test_migrate_is_safe_to_run_twice(any_db):
    migrate()
    assert migrate() == []
    assert current_version() == latest_version()
    assert database.table_exists("notif_notification") and database.table_exists("notif_delivery")


def test_idempotency_key_is_unique_per_recipient(any_db):
    migrate()
    make("u1", "k1")
    make("u2", "k1")  # same key, another recipient: fine
    with pytest.raises(peewee.IntegrityError), database.atomic():
        make("u1", "k1")
    assert Notification.select().count() == 2


def test_one_delivery_per_notification_and_channel(any_db):
    migrate()
    n = make(actions=[{"id": "view", "label": "View"}], data={"reportId": 42})
    Delivery.create(notification=n, channel="in_app")
    with pytest.raises(peewee.IntegrityError), database.atomic():
        Delivery.create(notification=n, channel="in_app")
    again = Notification.get_by_id(n.id)
    assert again.actions == [{"id": "view", "label": "View"}] and again.data == {"reportId": 42}
    assert again.to_dict()["read"] is False


def test_the_unread_count_counts_what_the_inbox_shows_with_one_statement_per_database(any_db, monkeypatch):
    migrate()
    now = utcnow()
    hour = dt.timedelta(hours=1)
    shown = [make("u1", "plain"), make("u1", "due", send_at=now - hour), make("u1", "lasting", expires_at=now + hour)]
    for key, extra in [("read", {"read_at": now}), ("later", {"send_at": now + hour}), ("held", {"digest_id": 1}),
                       ("retracted", {"retracted_at": now}), ("expired", {"expires_at": now - hour})]:
        make("u1", key, **extra)
    make("u2", "plain")
    visible_unread = Notification.select().where((Notification.user_id == "u1") & Notification.read_at.is_null()
                                                 & Notification.visible())
    assert {n.id for n in visible_unread} == {n.id for n in shown}
    monkeypatch.setattr(live, "_COUNT_STATEMENTS", {})
    assert [live.unread_count("u1"), live.unread_count("u2"), live.unread_count("nobody")] == [3, 1, 0]
    assert list(live._COUNT_STATEMENTS) == [type(database.obj)]  # generated once, then reused


def test_every_table_is_emptied_after_each_test_and_children_go_before_their_parents(pg):
    """The `pg` fixture's list (DELETE, in order) names every table notif has: a test can never see another's rows."""
    assert set(EMPTIED_AFTER_EACH_TEST) == {model._meta.table_name for model in MODELS}
    position = {name: i for i, name in enumerate(EMPTIED_AFTER_EACH_TEST)}
    for model in MODELS:
        for fk in model._meta.refs:  # (foreign key field → the model it points at)
            assert position[model._meta.table_name] < position[fk.rel_model._meta.table_name], (model, fk.rel_model)
