import peewee
import pytest

from notif.db import database, init_database
from notif.migrations import current_version, latest_version, migrate
from notif.models import Delivery, Notification


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
