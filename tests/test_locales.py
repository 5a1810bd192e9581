"""Per-user locale: the message's recipient locale, else the user's preference, picks templates/<locale>/<TYPE>.toml
with fallback (fr-CA → fr → the default), for every channel, digests, topics, updates and escalations.

In process against real PostgreSQL, Redis and SQS over HTTP (moto), an SMTP server on loopback."""
import subprocess
import sys
from dataclasses import replace

import pytest

from helpers import auth
from notif import locales
from notif.amendments import amend
from notif.deliver import deliver
from notif.escalations import escalate_due
from notif.fanout import step
from notif.ingest import ingest_batch
from notif.models import Delivery, Notification, Preference, utcnow
from notif.prepare import prepare
from notif.templates import TemplateStore, builtin_dir
from notif.topics import change
from test_digests import close_when_due
from test_escalations import later
from test_ingest import Enqueued, put, receive

VARIABLES = {"submitterName": "Ana", "branchName": "North", "reportId": 42}
ENGLISH, FRENCH = "Ana has submitted a new report for North", "Ana a soumis un nouveau rapport pour North"


def ingest(rt, sqs, queues, *bodies):
    for body in bodies:
        put(sqs, queues["normal"], body)
    return ingest_batch(rt, receive(sqs, queues["normal"], expect=len(bodies)), Enqueued())


def report(key="r1", recipients=("ana",), **extra):
    return {"id": key, "type": "REPORT_SUBMITTED", "recipients": list(recipients), "variables": VARIABLES, **extra}


def messages(key="r1") -> dict[str, str]:
    return {n.user_id: n.message for n in Notification.select().where(Notification.key == key)}


@pytest.fixture
def canadian(runtime, tmp_path):
    """A deployment's own fr-CA wording of REPORT_SUBMITTED, before the built-in French one."""
    (tmp_path / "fr-CA").mkdir()
    source = (builtin_dir() / "fr" / "REPORT_SUBMITTED.toml").read_text()
    (tmp_path / "fr-CA" / "REPORT_SUBMITTED.toml").write_text(source.replace("a soumis", "a déposé"))
    runtime.templates = TemplateStore([tmp_path, *runtime.templates.directories])
    return runtime


# -- tags and the fallback chain ---------------------------------------------------------------
@pytest.mark.parametrize("tag, canonical, chain", [
    ("fr", "fr", ["fr"]),
    ("fr_ca", "fr-CA", ["fr-CA", "fr"]),
    ("ZH-hant-tw", "zh-Hant-TW", ["zh-Hant-TW", "zh-Hant", "zh"]),
    ("es-419", "es-419", ["es-419", "es"]),
])
def test_a_tag_has_a_canonical_form_and_falls_back_along_its_subtags(tag, canonical, chain):
    assert locales.normalize(tag) == canonical and locales.chain(tag) == chain


@pytest.mark.parametrize("tag", ["f", "french-canada", "fr-", "fr CA", "fr-CA-x-y-z-w", "../fr", "e" * 40])
def test_what_is_not_a_tag(tag):
    assert locales.problem(tag) and locales.chain(tag) == []


def test_the_store_falls_back_from_fr_ca_to_fr_to_the_default(canadian):
    store = canadian.templates
    assert store.get("REPORT_SUBMITTED", "fr-CA").locale == "fr-CA"
    assert store.get("REPORT_SUBMITTED", "fr_ca").locale == "fr-CA"
    assert store.get("REPORT_SUBMITTED", "fr-BE").locale == "fr"  # no fr-BE: French
    assert store.get("REPORT_SUBMITTED", "de").locale is None  # no German: the default
    assert store.get("COMMENT_ADDED", "fr-CA").locale is None  # no French COMMENT_ADDED: the default
    assert store.render("REPORT_SUBMITTED", VARIABLES, "fr-CA").message == "Ana a déposé un nouveau rapport pour North"
    assert store.locales() == ["fr", "fr-CA"] and store.localized("REPORT_SUBMITTED")
    assert not store.localized("COMMENT_ADDED")


# -- who gets which ------------------------------------------------------------------------------
def test_the_recipients_locale_wins_over_the_preference_which_wins_over_the_default(canadian, sqs, queues):
    Preference.create(user_id="bo", settings={"locale": "fr"})
    Preference.create(user_id="cy", settings={"locale": "fr"})
    ingest(canadian, sqs, queues, report(recipients=[
        {"user_id": "ana", "locale": "fr-CA"},  # the message's locale: fr-CA's own wording
        "bo",  # none in the message: bo's preference, fr
        {"user_id": "cy", "locale": "en"},  # the message's (no English directory: the default) over cy's preference
        {"user_id": "dee", "locale": "fr-BE"},  # fr-BE: no such directory, falls back to fr
        "eve",  # neither: the default
    ]))
    assert messages() == {"ana": "Ana a déposé un nouveau rapport pour North", "bo": FRENCH, "cy": ENGLISH,
                          "dee": FRENCH, "eve": ENGLISH}
    bo = Notification.get(Notification.user_id == "bo")
    # every part: the in-app title, HTML and buttons, and each channel's own parts
    assert bo.title == "Nouveau rapport soumis" and [a["label"] for a in bo.actions] == ["Voir le rapport", "Approuver"]
    assert bo.channel_content == {"push": {"title": "Rapport de North", "body": "Ana a soumis le rapport nº 42"},
                                  "email": {"subject": "Ana a soumis un rapport pour North"}}
    assert Notification.get(Notification.user_id == "ana").recipient == {"locale": "fr-CA"}  # kept, canonical


def test_a_bad_recipient_locale_is_dead_lettered_naming_the_field(runtime, sqs, queues):
    outcome = ingest(runtime, sqs, queues, report(recipients=["ana", {"user_id": "bo", "locale": "français"}]))
    (letter,) = outcome.dead_lettered
    assert letter.field == "recipients.1.locale" and "'français' is not a locale tag" in letter.reason


def test_a_localized_template_that_fails_leaves_the_default_rendering(runtime, sqs, queues, tmp_path, caplog):
    (tmp_path / "fr").mkdir()
    (tmp_path / "fr" / "REPORT_SUBMITTED.toml").write_text('title = "t"\nmessage = "{{ 1 / 0 }}"\n')
    runtime.templates = TemplateStore([tmp_path, *runtime.templates.directories])
    outcome = ingest(runtime, sqs, queues, report(recipients=[{"user_id": "ana", "locale": "fr"}]))
    assert outcome.stored == 1 and messages() == {"ana": ENGLISH}  # delivered, in the default language
    assert "localized template failed; the default one is used" in caplog.text


def test_preferences_are_read_once_for_a_batch_for_locales_and_opt_outs_alike(runtime, sqs, queues, monkeypatch):
    for i in range(0, 30, 2):
        Preference.create(user_id=f"u{i}", settings={"locale": "fr", "channels": {"push": False}})
    reads = []
    select = Preference.select

    def counted(*args, **kwargs):
        reads.append(args)
        return select(*args, **kwargs)

    monkeypatch.setattr(Preference, "select", counted)
    ingest(runtime, sqs, queues, *[report(f"r{m}", recipients=[f"u{i}" for i in range(m * 10, m * 10 + 10)])
                                   for m in range(3)])
    assert len(reads) == 1  # 30 recipients, 3 messages, one batch: one query
    monkeypatch.setattr(Preference, "select", select)
    fr = Notification.select().where(Notification.message == FRENCH).count()
    assert fr == 15 and Delivery.select().where((Delivery.channel == "push") & (Delivery.status == "skipped")).count() == 15


# -- digests, topics, updates, escalations --------------------------------------------------------
def test_a_digest_is_written_in_its_users_locale(runtime, sqs, queues):
    Preference.create(user_id="bo", settings={"locale": "fr-CA"})
    ingest(runtime, sqs, queues, *[report(f"report-{i}", recipients=[user], batch_key="reports", batch_window=1)
                                   for i in range(2) for user in ("bo", "eve")])
    close_when_due(runtime)  # (both windows close in the same pass)
    digests = {n.user_id: n for n in Notification.select().where(Notification.key.startswith("digest-"))}
    assert digests["bo"].title == "2 nouveaux rapports soumis" and digests["bo"].message.startswith("Ana (North, nº")
    assert digests["eve"].title == "2 new reports submitted"


def test_each_topic_member_gets_it_in_their_locale_with_one_preference_read_per_chunk(runtime, sqs, queues,
                                                                                     monkeypatch):
    change("branch", [f"m{i}" for i in range(6)], [])
    for user in ("m1", "m4"):
        Preference.create(user_id=user, settings={"locale": "fr"})
    runtime.settings = replace(runtime.settings, fanout_chunk=3)
    put(sqs, queues["normal"], {"id": "news", "topic": "branch", "type": "REPORT_SUBMITTED", "variables": VARIABLES,
                                "channels": ["in_app"]})
    started = []
    ingest_batch(runtime, receive(sqs, queues["normal"], expect=1), Enqueued(), start_fanouts=started.extend)
    ((fanout_id,  _),) = started
    reads = []
    select = Preference.select
    monkeypatch.setattr(Preference, "select", lambda *a, **k: reads.append(a) or select(*a, **k))
    chunks = [step(runtime, fanout_id), step(runtime, fanout_id)]
    assert len(reads) == 2  # one per chunk
    assert messages("news") == {f"m{i}": FRENCH if i in (1, 4) else ENGLISH for i in range(6)}
    # a chunk holding a localized member is not delivered as copies of one notification
    assert all(chunk.notification is None for chunk in chunks)


def test_an_update_re_renders_each_recipient_in_their_locale(runtime, sqs, queues):
    Preference.create(user_id="bo", settings={"locale": "fr"})
    ingest(runtime, sqs, queues, report(recipients=["bo", "eve", {"user_id": "cy", "locale": "fr"}]))
    put(sqs, queues["normal"], {"update": "r1", "variables": {**VARIABLES, "submitterName": "Zoé"}})
    (item,) = receive(sqs, queues["normal"], expect=1)
    amend(runtime, prepare(runtime, item))
    assert messages() == {"bo": "Zoé a soumis un nouveau rapport pour North",
                          "cy": "Zoé a soumis un nouveau rapport pour North",
                          "eve": "Zoé has submitted a new report for North"}


def test_an_escalation_email_is_in_the_recipients_locale(runtime, sqs, queues, smtp):  # noqa: F811
    runtime.settings = replace(runtime.settings, smtp_url=f"smtp://127.0.0.1:{smtp[1]}", email_from="n@example.com")
    Preference.create(user_id="bo", settings={"locale": "fr-CA"})
    ingest(runtime, sqs, queues, report(recipients=[{"user_id": "bo", "email": "bo@example.com"}],
                                        channels=["in_app"], escalate={"after": 60, "channels": ["email"]}))
    escalate_due(runtime, Enqueued(), now=later(61))
    assert deliver(runtime, Delivery.get(Delivery.channel == "email").id) == "sent"
    (mail,) = smtp[0].messages
    assert mail["Subject"] == "Ana a soumis un rapport pour North"
    assert "Voir le rapport" in mail.get_body(("html",)).get_content()


# -- the preferences document ----------------------------------------------------------------------
def test_the_preferences_document_keeps_a_valid_locale_in_its_canonical_form(app_client, pg):
    client = app_client()
    saved = client.put("/api/preferences", json={"locale": "fr_ca"}, headers=auth("pia"))
    assert saved.status_code == 200 and saved.json() == {"channels": {}, "types": {}, "type_channels": {},
                                                         "locale": "fr-CA"}
    assert Preference.get(Preference.user_id == "pia").settings["locale"] == "fr-CA"
    bad = client.put("/api/preferences", json={"locale": "français"}, headers=auth("pia"))
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "locale"]
    assert client.put("/api/preferences", json={"locale": "x" * 40}, headers=auth("pia")).status_code == 422
    assert client.get("/api/preferences", headers=auth("pia")).json()["locale"] == "fr-CA"
    assert client.get("/api/preferences/options", headers=auth("pia")).json()["locales"] == ["fr"]


# -- notif templates check -----------------------------------------------------------------------
def check(tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "notif.cli", "templates", "check"], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "NOTIF_TEMPLATES_DIR": str(tmp_path),
                                           "NOTIF_STATE_DIR": str(tmp_path / "state")})


@pytest.mark.processes  # runs the notif command: not in the fast tier
def test_templates_check_covers_every_locale():
    result = check(builtin_dir() / "nonexistent")
    assert result.returncode == 0, result.stdout
    assert "ok      fr/REPORT_SUBMITTED  (and its [digest])" in result.stdout and "ok      fr/DIGEST" in result.stdout


@pytest.mark.parametrize("name, source, words", [
    ("fr/REPORT_SUBMITTED.toml", 'title = "Nouveau"\nmessage = "{{ submitter }} a soumis"\n',
     "variables differ from the default template's: submitter only here, branchName only in the default"),
    ("de/REPORT_SUBMITTED.toml", 'title = "Neu"\nmessage = "{{ submitterName }} {{ branchName }} {{ reportId }}"\n',
     "actions differ from the default template's"),
    ("fr/REPORT_APPROVED.toml", 'title = "Approuvé\nmessage = ""\n', "is unreadable"),
    ("fr/NO_DEFAULT.toml", 'title = "t"\nmessage = "m"\n', "a localized template without a default"),
    ("fr-CA/COMMENT_ADDED.toml", 'title = "{{ x"\nmessage = "m"\n', "does not parse"),
])
@pytest.mark.processes  # runs the notif command: not in the fast tier
def test_templates_check_finds_a_broken_localized_template(tmp_path, name, source, words):
    (tmp_path / name).parent.mkdir(exist_ok=True)
    (tmp_path / name).write_text(source)
    result = check(tmp_path)
    assert result.returncode == 1
    (failed,) = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
    assert failed.startswith(f"FAILED  {name.removesuffix('.toml')}: ") and words in failed, failed
    assert result.stdout.splitlines()[-1].endswith(" ok, 1 failed")


def test_a_scheduled_send_keeps_its_locale_until_it_goes_out(runtime, sqs, queues):
    Preference.create(user_id="bo", settings={"locale": "fr"})
    ingest(runtime, sqs, queues, report(recipients=["bo"], send_at=later(3600).isoformat() + "+00:00"))
    assert messages() == {"bo": FRENCH} and Notification.get().send_at > utcnow()
