"""Digests: windows stored in the database, closed once into one grouped notification."""
import datetime as dt
import threading

from helpers import wait_until
from notif.db import database
from notif.digests import close_due
from notif.ingest import ingest_batch
from notif.live import unread_count
from notif.models import Delivery, Digest, Notification, Preference, utcnow
from test_ingest import Enqueued, put, receive


def report(user, key, name, branch="North", window=1, **extra):
    return {"id": key, "user_id": user, "type": "REPORT_SUBMITTED", "batch_key": "reports", "batch_window": window,
            "variables": {"submitterName": name, "branchName": branch, "reportId": int(key.split("-")[-1])}, **extra}


def close_when_due(runtime, timeout=5.0) -> Enqueued:
    """Run the scheduler's job until a window closes (its time is up after `batch_window`)."""
    got = Enqueued()
    wait_until(lambda: close_due(runtime, got), timeout, 0.05, "a digest window to close")
    return got


def test_five_messages_in_one_window_become_one_digest_listing_five(runtime, sqs, queues):
    names = ["Ana", "Ben", "Cy", "Dee", "Eve"]
    for i, name in enumerate(names):
        put(sqs, queues["normal"], report("u1", f"report-{i}", name))
    enqueued = Enqueued()
    outcome = ingest_batch(runtime, receive(sqs, queues["normal"], expect=5), enqueued)
    assert outcome.stored == 5 and enqueued == []  # stored at once, nothing sent yet
    assert Digest.select().count() == 1 and Delivery.select().count() == 0
    assert unread_count("u1") == 0  # the items wait, hidden, for their digest
    assert close_due(runtime, Enqueued()) == 0  # not before the window's end

    got = close_when_due(runtime)
    digest = Notification.get(Notification.key == "digest-1")
    assert digest.title == "5 new reports submitted"
    for name in names:
        assert name in digest.message
    assert digest.data["digest"]["count"] == 5 and [i["key"] for i in digest.data["digest"]["items"]] == \
        [f"report-{i}" for i in range(5)]
    assert "<strong>Ana</strong>" in digest.html
    deliveries = {d.channel: d for d in Delivery.select()}
    assert set(deliveries) == {"in_app", "push"}  # the template's channels, once for the five
    assert sorted(got) == sorted((d.id, "normal") for d in deliveries.values())
    assert unread_count("u1") == 1
    assert close_due(runtime, Enqueued()) == 0  # closed once


def test_a_window_of_one_sends_that_notification_as_it_was(runtime, sqs, queues):
    put(sqs, queues["normal"], report("u1", "report-7", "Ana"))
    ingest_batch(runtime, receive(sqs, queues["normal"], expect=1), Enqueued())
    close_when_due(runtime)
    digest = Notification.get(Notification.key == "digest-1")
    assert digest.title == "New report submitted" and digest.message == "Ana has submitted a new report for North"
    assert [a["id"] for a in digest.actions] == ["view", "approve"]


def test_buckets_are_per_user_and_key_and_high_priority_or_send_at_bypass(runtime, sqs, queues):
    put(sqs, queues["normal"], report("u1", "report-1", "Ana"))
    put(sqs, queues["normal"], report("u2", "report-2", "Ben"))
    put(sqs, queues["normal"], {**report("u1", "report-3", "Cy"), "batch_key": "other"})
    put(sqs, queues["normal"], report("u1", "report-4", "Dee", priority="high"))
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    put(sqs, queues["normal"], report("u1", "report-5", "Eve", send_at=later))
    enqueued = Enqueued()
    ingest_batch(runtime, receive(sqs, queues["normal"], expect=5), enqueued)
    assert sorted((d.user_id, d.batch_key) for d in Digest.select()) == [("u1", "other"), ("u1", "reports"), ("u2", "reports")]
    high = Notification.get(Notification.key == "report-4")
    assert high.digest_id is None and len(enqueued) == 2  # HIGH went straight out (in_app + push)
    assert Notification.get(Notification.key == "report-5").digest_id is None  # scheduled: sent at its time


def test_a_template_digest_window_digests_without_batch_key(runtime, sqs, queues, tmp_path):
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "LIKE.toml").write_text(
        'title = "{{ who }} liked your post"\nmessage = "{{ who }}"\n[digest]\nwindow = 1\n'
        'title = "{{ count }} likes"\nmessage = "{{ items | map(attribute=\'variables.who\') | join(\', \') }}"\n')
    from notif.templates import TemplateStore
    runtime.templates = TemplateStore([tmp_path / "tpl", *runtime.templates.directories])
    for i, who in enumerate(["Ana", "Ben", "Cy"]):
        put(sqs, queues["normal"], {"id": f"like-{i}", "user_id": "u1", "type": "LIKE", "variables": {"who": who}})
    ingest_batch(runtime, receive(sqs, queues["normal"], expect=3), Enqueued())
    assert Digest.get().batch_key == "LIKE"  # the type is the default key
    close_when_due(runtime)
    digest = Notification.get(Notification.key == "digest-1")
    assert (digest.title, digest.message) == ("3 likes", "Ana, Ben, Cy")


def test_a_broken_digest_template_falls_back_to_the_generic_digest(runtime, sqs, queues, tmp_path):
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "LIKE.toml").write_text(
        'title = "{{ who }} liked it"\nmessage = "m"\n[digest]\ntitle = "{{ nonsense }}"\nmessage = "x"\n')
    from notif.templates import TemplateStore
    runtime.templates = TemplateStore([tmp_path / "tpl", *runtime.templates.directories])
    for i, who in enumerate(["Ana", "Ben"]):
        put(sqs, queues["normal"], {"id": f"like-{i}", "user_id": "u1", "type": "LIKE", "variables": {"who": who},
                                    "batch_key": "likes", "batch_window": 1})
    ingest_batch(runtime, receive(sqs, queues["normal"], expect=2), Enqueued())
    close_when_due(runtime)
    digest = Notification.get(Notification.key == "digest-1")
    assert digest.title == "2 new notifications" and digest.message == "Ana liked it; Ben liked it"


def test_cancel_withdraws_an_item_while_its_window_is_open_and_not_after(runtime, sqs, queues):
    for i, name in enumerate(["Ana", "Ben", "Cy"]):
        put(sqs, queues["normal"], report("u1", f"report-{i}", name))
    ingest_batch(runtime, receive(sqs, queues["normal"], expect=3), Enqueued())
    put(sqs, queues["normal"], {"cancel": "report-1"})
    assert ingest_batch(runtime, receive(sqs, queues["normal"], expect=1), Enqueued()).cancelled == 1
    close_when_due(runtime)
    digest = Notification.get(Notification.key == "digest-1")
    assert digest.title == "2 new reports submitted" and "Ben" not in digest.message
    put(sqs, queues["normal"], {"cancel": "report-0"})
    assert ingest_batch(runtime, receive(sqs, queues["normal"], expect=1), Enqueued()).cancelled == 0  # too late
    assert Notification.select().where(Notification.key == "report-0").count() == 1


def test_preferences_apply_to_the_digest(runtime, sqs, queues):
    Preference.create(user_id="u1", settings={"channels": {"push": False}})
    for i, name in enumerate(["Ana", "Ben"]):
        put(sqs, queues["normal"], report("u1", f"report-{i}", name))
    ingest_batch(runtime, receive(sqs, queues["normal"], expect=2), Enqueued())
    got = close_when_due(runtime)
    statuses = {d.channel: (d.status, d.last_error) for d in Delivery.select()}
    assert statuses == {"in_app": ("pending", None),
                        "push": ("skipped", "preference: the user opted out of the push channel (channels.push)")}
    assert len(got) == 1


def test_concurrent_ingests_and_a_closer_never_lose_or_double_an_item(runtime, sqs, queues, pg, monkeypatch):
    """Eight threads add items to one bucket while another closes windows as they fall due:
    every item ends in exactly one digest, and every digest lists exactly its items."""
    from notif.ingest import store
    from notif.poller.poller import to_received
    from notif.prepare import prepare

    monkeypatch.setattr("notif.digests.MAX_ITEMS_RENDERED", 10_000)  # list every item, to check them all
    per_thread, threads_n = 40, 8
    bodies = [[report("u1", f"report-{t * 100 + i}", f"n{t}-{i}", window=1) for i in range(per_thread)]
              for t in range(threads_n)]
    stop = threading.Event()
    errors = []

    def received(body):
        import json
        return to_received({"MessageId": body["id"], "ReceiptHandle": "h", "Body": json.dumps(body),
                            "Attributes": {"SentTimestamp": "0", "ApproximateReceiveCount": "1"}}, "normal")

    def ingest(batch):
        try:
            with database.connection_context():
                for body in batch:
                    store(runtime, [prepare(runtime, received(body))])
                    stop.wait(0.03)  # pacing: the items arrive over more than one 1-s window
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def closer():
        with database.connection_context():
            while not stop.is_set():
                close_due(runtime, Enqueued())

    closing = threading.Thread(target=closer)
    closing.start()
    workers = [threading.Thread(target=ingest, args=(b,)) for b in bodies]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wait_until(lambda: Digest.select().where(Digest.open_key.is_null(False)).count() == 0, 10, 0.1,
               "every window to close")
    stop.set()
    closing.join()
    assert not errors
    items = {n.key: n.digest_id for n in Notification.select().where(Notification.digest_id.is_null(False))}
    assert len(items) == per_thread * threads_n
    listed = []
    for digest in Digest.select():
        grouped = Notification.get_by_id(digest.notification_id)
        keys = [i["key"] for i in grouped.data["digest"]["items"]]
        assert grouped.data["digest"]["count"] == len(keys)
        assert all(items[k] == digest.id for k in keys)  # listed in the window it belongs to
        listed += keys
    assert sorted(listed) == sorted(items)  # each item in exactly one digest
    assert Digest.select().count() >= 2  # the closer ran while items kept coming
    assert utcnow() >= max(d.closes_at for d in Digest.select())


def test_a_digest_whose_rendering_links_unsafely_falls_back_to_the_generic_digest(runtime, sqs, queues, tmp_path):
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "LIKE.toml").write_text(
        "title = '{{ who }} liked it'\nmessage = 'm'\n[digest]\ntitle = '{{ count }} likes'\nmessage = 'm'\n"
        """html = '{% for item in items %}<a href="{{ item.variables.link }}">{{ item.title }}</a>{% endfor %}'\n""")
    from notif.templates import TemplateStore
    runtime.templates = TemplateStore([tmp_path / "tpl", *runtime.templates.directories])
    for i, (who, link) in enumerate([("Ana", "/posts/1"), ("Ben", "javascript:alert(1)")]):
        put(sqs, queues["normal"], {"id": f"like-{i}", "user_id": "u1", "type": "LIKE", "batch_key": "likes",
                                    "batch_window": 1, "variables": {"who": who, "link": link}})
    assert ingest_batch(runtime, receive(sqs, queues["normal"], expect=2), Enqueued()).stored == 2
    close_when_due(runtime)
    digest = Notification.get(Notification.key == "digest-1")
    assert digest.title == "2 new notifications" and "javascript:" not in digest.html


def test_a_digest_too_big_for_the_output_limit_is_sent_as_its_titles(runtime, sqs, queues, tmp_path):
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "LONG.toml").write_text("title = '{{ t }}'\nmessage = 'm'\n")
    from notif.templates import TemplateStore
    runtime.templates = TemplateStore([tmp_path / "tpl", *runtime.templates.directories], max_output=250)
    titles = ["a" * 150, "b" * 150]  # each fits; the generic digest's list of both does not
    for i, title in enumerate(titles):
        put(sqs, queues["normal"], {"id": f"long-{i}", "user_id": "u1", "type": "LONG", "batch_key": "long",
                                    "batch_window": 1, "variables": {"t": title}})
    assert ingest_batch(runtime, receive(sqs, queues["normal"], expect=2), Enqueued()).stored == 2
    close_when_due(runtime)
    digest = Notification.get(Notification.key == "digest-1")
    assert (digest.title, digest.message, digest.html) == ("2 new notifications", "; ".join(titles), None)
    assert digest.data["digest"]["count"] == 2  # nothing lost
