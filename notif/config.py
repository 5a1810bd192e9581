"""Settings: the environment, read once into one typed object.

Every process builds a :class:`Settings` with :func:`load_settings` at start-up and passes
it on; nothing else in notif reads ``os.environ``. When a ``notif dev`` stack is running in
the current folder, its state file (``.notif/state.json``) fills in whatever the real
environment leaves unset, so ``notif send`` and ``notif token`` reach it from a second
terminal with nothing configured.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from . import config_values as parse
from .config_values import FEATURES, PRIORITIES
from .errors import ConfigError
from .webhooks.events import parse_events
from .webhooks.signing import parse_secret

HELP = "run `notif dev` for a local stack or see README › Configuration"


def env(name: str, default: Any = None, cast: Callable[[str], Any] = str, doc: str = "", secret: bool = False) -> Any:
    """Declare a setting read from environment variable ``name``."""
    return field(default=default, metadata={"env": name, "cast": cast, "doc": doc, "secret": secret})


_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@/\s]+@")


def _masked(name: str, value: Any, secret: bool) -> str:
    if value in (None, ""):
        return repr(value)
    if secret:
        return "'***'"
    if isinstance(value, str) and name.endswith("_url"):
        return repr(_URL_PASSWORD.sub(r"\1***@", value))
    return repr(value)


@dataclass(frozen=True, eq=False)  # hashed by identity: caches key on the settings object
class Settings:
    database_url: str = env("DATABASE_URL", "sqlite:///notif.db", doc="`postgres://…` or `sqlite:///path`")
    redis_url: str | None = env("REDIS_URL", doc="Redis for Dramatiq, fan-out, locks, limits")
    live_redis_url: str | None = env("NOTIF_LIVE_REDIS_URL", doc="a Redis of its own for live events (the SSE pub/sub: every in-app publish, every web process's subscriptions), so a burst of them and the Dramatiq broker do not share one server's thread; same TLS settings as REDIS_URL (unset: REDIS_URL)")
    redis_tls_verify: str = env("NOTIF_REDIS_TLS_VERIFY", "required", parse.tls_verify, doc="for a `rediss://` REDIS_URL: `required` (verify the server's certificate) or `none` (Heroku Redis: a self-signed certificate)")
    redis_tls_ca: str | None = env("NOTIF_REDIS_TLS_CA", doc="for a `rediss://` REDIS_URL: a CA file (PEM) to verify the server's certificate with")
    redis_prefix: str = env("NOTIF_REDIS_PREFIX", "notif", doc="prefix of every Redis key notif uses (one per deployment or test run)")
    aws_endpoint_url: str | None = env("AWS_ENDPOINT_URL", doc="SQS endpoint override (boto3's own variable)")
    aws_access_key_id: str | None = env("AWS_ACCESS_KEY_ID", doc="AWS credentials (else boto3's usual chain: instance role, ~/.aws)")
    aws_secret_access_key: str | None = env("AWS_SECRET_ACCESS_KEY", doc="AWS credentials, with the above", secret=True)
    aws_region: str = env("AWS_DEFAULT_REGION", "us-east-1", doc="AWS region of the queues")
    queue_high: str | None = env("AWS_SQS_HIGH_PRIORITY_QUEUE_URL", doc="input queue, HIGH priority")
    queue_normal: str | None = env("AWS_SQS_NOTIFICATION_QUEUE_URL", doc="input queue, NORMAL priority")
    queue_low: str | None = env("AWS_SQS_LOW_PRIORITY_QUEUE_URL", doc="input queue, LOW priority")
    queue_dead_letter: str | None = env("AWS_SQS_DEAD_LETTER_QUEUE_URL", doc="where permanent failures go, with their reason")
    jwt_secret: str | None = env("NOTIF_JWT_SECRET", doc="HS256 secret shared with the host app: at least 32 bytes (`notif serve` refuses a shorter one outside `notif dev`)", secret=True)
    jwt_audience: str | None = env("NOTIF_JWT_AUDIENCE", doc="when set, a token's `aud` must name it (and `notif token` adds it)")
    jwt_issuer: str | None = env("NOTIF_JWT_ISSUER", doc="when set, a token's `iss` must be it (and `notif token` adds it)")
    port: int = env("PORT", 8000, int, doc="web port")
    cors_origins: tuple | None = env("NOTIF_CORS_ORIGINS", None, parse.origins, doc="origins (`scheme://host[:port]`, separated by commas or spaces) of host apps whose pages may call `/api/*`, `/events` and `/notif-inbox.js` from the browser (CORS, for bearer tokens: no credentials); unset: no CORS headers at all (see docs/security.md › CORS)")
    public_url: str | None = env("NOTIF_PUBLIC_URL", doc="the host app's base URL: relative action links in emails and pushes are made absolute with it")
    vapid_private_key: str | None = env("VAPID_PRIVATE_KEY", doc="Web Push: the VAPID private key (`notif vapid` makes a pair)", secret=True)
    vapid_public_key: str | None = env("VAPID_PUBLIC_KEY", doc="Web Push: the VAPID public key, given to browsers")
    vapid_subject: str = env("VAPID_SUBJECT", "mailto:notifications@example.com", doc="Web Push: a contact for the push services (mailto: or https:)")
    push_timeout: float = env("NOTIF_PUSH_TIMEOUT", 10.0, float, doc="seconds for one push service request")
    push_services: tuple = env("NOTIF_PUSH_SERVICES", "", parse.csv_list, doc="Web Push: accept only endpoints on these host suffixes (e.g. `fcm.googleapis.com,push.services.mozilla.com,push.apple.com,notify.windows.com`); empty: any public https host")
    push_max_per_user: int = env("NOTIF_PUSH_MAX_PER_USER", 10, int, doc="Web Push: most subscriptions (browsers) kept per user; a new one beyond it drops the oldest")
    vapid_token_seconds: int = env("NOTIF_VAPID_TOKEN_SECONDS", 43200, parse.vapid_seconds, doc="Web Push: lifetime of the signed VAPID token, reused for every push to one push service until less than a twelfth of it is left (at most 86400; `0`: a new signature for each request)")
    outbound_allow: tuple = env("NOTIF_OUTBOUND_ALLOW", "", parse.outbound_allow, doc="hosts, `host:port`s and CIDRs that outbound calls (push, webhooks, plugins) may reach although private or loopback, and the only ones plain http may reach (e.g. `127.0.0.1` for a local push service; `notif dev` sets loopback)")
    webhook_urls: tuple = env("NOTIF_WEBHOOK_URL", "", parse.webhook_urls, doc="the host app's webhook endpoint(s), separated by commas or spaces: notif POSTs events (README › Webhooks) to each, signed as Standard Webhooks says; https, or plain http to a host NOTIF_OUTBOUND_ALLOW lists; a bad one stops start-up naming it; unset: no webhooks, nothing written")
    webhook_secret: str | None = env("NOTIF_WEBHOOK_SECRET", None, parse_secret, doc="the webhooks' signing secret: `whsec_` and 24 to 64 random bytes in base64 (required with NOTIF_WEBHOOK_URL; never logged); to rotate, several comma-separated, the new one first: each is signed with all", secret=True)
    webhook_events: frozenset = env("NOTIF_WEBHOOK_EVENTS", "all", parse_events, doc="which events are sent: `all`, or a list of types (`delivery.failed,notification.read`), `delivery.*`, or `all,-notification.seen`")
    webhook_topic_recipients: bool = env("NOTIF_WEBHOOK_TOPIC_RECIPIENTS", False, parse.boolean, doc="a topic message's events per recipient (`notification.stored`, `delivery.sent`: one row each, a million for a million members); off: one `notification.stored` per topic message, with the recipient count")
    webhook_max_attempts: int = env("NOTIF_WEBHOOK_MAX_ATTEMPTS", 15, int, doc="tries of one webhook event (exponential backoff with jitter, from 2 s up to an hour apart: about 3 hours in all) before it is dead-lettered (`notif dlq`)")
    webhook_timeout: float = env("NOTIF_WEBHOOK_TIMEOUT", 15.0, parse.webhook_timeout, doc="seconds a webhook receiver has to answer, at most 50 (connecting: at most 5 of them)")
    smtp_url: str | None = env("SMTP_URL", doc="email: `smtp://user:pass@host:587` (STARTTLS when offered) or `smtps://…:465`", secret=True)
    email_from: str | None = env("EMAIL_FROM", doc="email: the From address")
    smtp_timeout: float = env("NOTIF_SMTP_TIMEOUT", 15.0, float, doc="seconds for the SMTP conversation's each step")
    smtp_idle_seconds: float = env("NOTIF_SMTP_IDLE_SECONDS", 30.0, float, doc="email: each worker thread keeps its SMTP connection for the next message, closed once idle this long (`0`: a connection per message)")
    deliver_batch: int = env("NOTIF_DELIVER_BATCH", 20, parse.deliver_batch, doc="push, email and plugin channels: deliveries made together (an ingest batch, a fan-out chunk) go to the workers as one message per this many of a channel, claimed in one statement and sent with the channel's `send_many` (1 to 100; `1`: one message per delivery)")
    unsubscribe_url: str | None = env("NOTIF_UNSUBSCRIBE_URL", doc="email: List-Unsubscribe link; `{user_id}` is replaced")
    sse_ping_seconds: float = env("NOTIF_SSE_PING_SECONDS", 15.0, float, doc="heartbeat comment interval on SSE streams (proxies close idle connections)")
    sse_send_timeout: float = env("NOTIF_SSE_SEND_TIMEOUT", 10.0, float, doc="an SSE client that does not take an event within this many seconds is dropped")
    sse_retry_ms: int = env("NOTIF_SSE_RETRY_MS", 3000, int, doc="the `retry:` a browser waits before reconnecting")
    sse_max_per_user: int = env("NOTIF_SSE_MAX_PER_USER", 5, parse.count, doc="live SSE streams one user may hold open across all web processes (tabs, devices); one more gets 429 (`0`: no cap)")
    sse_max_streams: int = env("NOTIF_SSE_MAX_STREAMS", 5000, parse.count, doc="live SSE streams one web process holds (each is an open socket; keep well under the open-file limit); one more gets 429 (`0`: no cap)")
    max_body: int = env("NOTIF_MAX_BODY", 65536, parse.byte_size, doc="largest request body the web process reads, on every route (bytes, or `64k`, `1m`); a larger one gets 413")
    metrics_token: str | None = env("NOTIF_METRICS_TOKEN", doc="when set, `GET /metrics` needs `Authorization: Bearer <it>` and `GET /readyz` shows its details (checks, parse.features, processes) only with it", secret=True)
    poll_weights: dict = env("NOTIF_POLL_WEIGHTS", "high=6,normal=3,low=1", parse.weights, doc="share of receives per priority when the workers are busy")
    poll_wait_seconds: int = env("NOTIF_POLL_WAIT_SECONDS", 20, int, doc="SQS long-poll wait")
    visibility_timeout: int = env("NOTIF_VISIBILITY_TIMEOUT", 120, int, doc="seconds a received SQS message stays hidden while notif stores it")
    max_queued: int = env("NOTIF_MAX_QUEUED", 16, int, doc="pause receiving a priority while its ingest queue in Redis holds this many batches")
    max_backlog: int = env("NOTIF_MAX_BACKLOG", 32, int, doc="ingest batches in Redis (all priorities) beyond which receives are shared out by weight")
    ingest_batch: int = env("NOTIF_INGEST_BATCH", 50, int, doc="most SQS messages one ingest transaction stores: under load the poller tops a full receive of 10 up to this, with no waiting")
    fanout_chunk: int = env("NOTIF_FANOUT_CHUNK", 2000, int, doc="recipients one transaction stores: a topic message is stored this many members at a time, each chunk its own short transaction and its own actor message, so other work (HIGH first) runs in between; also the most notifications one ingest transaction of a batch writes")
    fanout_stall_seconds: float = env("NOTIF_FANOUT_STALL", 60.0, float, doc="a topic fan-out that has not moved for this long is resumed by the scheduler's sweep (its worker died or its message was lost)")
    max_receives: int = env("NOTIF_MAX_RECEIVES", 10, int, doc="an SQS message received more than this many times without being stored is dead-lettered")
    low_threads: int | None = env("NOTIF_LOW_THREADS", None, parse.count, doc="most threads of a worker process that LOW work (`notif.low`, `notif.deliver.low`) holds at once, so the rest are free for HIGH and NORMAL under a LOW flood; LOW messages beyond it wait in Redis, not in the process (unset: half the `--threads`; `0`: no cap)")
    leave_high_to_lane: bool = env("NOTIF_LEAVE_HIGH_TO_LANE", True, parse.boolean, doc="a worker on HIGH's queues and others (the Procfile's `worker`) takes no new HIGH message while a HIGH lane (`worker_high`: HIGH's queues only) is alive, so HIGH is done in the lane's process, not beside a LOW flood; with no lane alive (scaled to 0, or dead for three heartbeats) it takes HIGH itself (`off`: always)")
    worker_idle_poll_ms: int = env("NOTIF_WORKER_IDLE_POLL_MS", 100, parse.count, doc="a worker polls an empty queue at least this often (ms): the longest a message arriving after a lull waits for its first fetch (Dramatiq's own backoff goes to 1 s); HIGH's queues poll ten times as often; each idle queue costs a worker 1,000 to 2,000/this Redis calls a second, HIGH's ten times that (`0`: Dramatiq's default)")
    broker_heartbeat_timeout_ms: int = env("NOTIF_BROKER_HEARTBEAT_TIMEOUT", 60000, int, doc="ms before Dramatiq hands a silent worker's messages to others (the outbox sweep recovers them regardless)")
    sweep_interval_seconds: float = env("NOTIF_SWEEP_INTERVAL", 15.0, float, doc="seconds between outbox sweeps (scheduler)")
    sweep_grace_seconds: float = env("NOTIF_SWEEP_GRACE", 120.0, float, doc="a pending delivery this overdue is enqueued again (its message was lost)")
    sweep_lease_seconds: float = env("NOTIF_SWEEP_LEASE", 300.0, float, doc="a delivery `sending` this long is reclaimed (its worker died)")
    retention_days: int = env("NOTIF_RETENTION_DAYS", 90, parse.count, doc="notifications older than this many days are deleted with their deliveries by the leading scheduler, in small batches, unless a delivery is still owed, and so are webhook events sent that long ago (`0`: keep everything); see docs/runbook.md › Retention")
    leader_ttl: float = env("NOTIF_LEADER_TTL", 10.0, float, doc="seconds a scheduler's leadership lasts without renewal (failover time)")
    sla_seconds: dict = env("NOTIF_SLA_SECONDS", "high=5,normal=60,low=900", parse.weights, doc="end-to-end target per priority (SQS send to first delivery); slower counts as a breach")
    escalation_interval_seconds: float = env("NOTIF_ESCALATION_INTERVAL", 1.0, float, doc="seconds between the leading scheduler's passes over due escalations (an escalation goes out within this long of its time)")
    heartbeat_seconds: float = env("NOTIF_HEARTBEAT_SECONDS", 5.0, float, doc="how often each process reports it is alive; three missed beats mark it stopped")
    metrics_port: int | None = env("NOTIF_METRICS_PORT", None, int, doc="port for this process's /metrics (poller 9301, scheduler 9302, worker 9191 when unset; the web process serves /metrics on PORT)")
    templates_dir: str | None = env("NOTIF_TEMPLATES_DIR", doc="a deployment's own templates, looked up before the built-ins")
    preference_types: tuple = env("NOTIF_PREFERENCE_TYPES", "", parse.csv_list, doc="notification types users may opt out of besides template names: the `type`s producers send with a literal title and message (the old worker's format)")
    template_max_output: int = env("NOTIF_TEMPLATE_MAX_OUTPUT", 262144, int, doc="characters one rendered template part (title, message, html, an action's url…) may have (and what `*`, a filter or a `namespace()` may build on the way); a message whose variables make more is dead-lettered naming the template and part")
    plugins: tuple = env("NOTIF_PLUGINS", "", parse.csv_list, doc="extra plugin modules to load by import path (besides installed entry points)")
    disable_plugins: tuple = env("NOTIF_DISABLE_PLUGINS", "", parse.csv_list, doc="channel plugins not to load, by name")
    digest_window: int = env("NOTIF_DIGEST_WINDOW", 60, int, doc="seconds a digest window stays open when neither the message (`batch_window`) nor its template says")
    rate_limits: dict = env("NOTIF_RATE_LIMITS", "push=10/minute,email=20/hour", parse.rate_limits, doc="per user and channel; over the limit a delivery is deferred, never dropped (`off`: no limits)")
    features: frozenset = env("NOTIF_FEATURES", "all", parse.features, doc="capabilities turned on: `all`, `none`, a list (`sse,push,scheduling`) or `all,-digests`; of " + ", ".join(FEATURES) + " (see README › Feature flags)")
    feature_sse: bool | None = env("NOTIF_FEATURE_SSE", None, parse.flag, doc="`on`/`off`: overrides NOTIF_FEATURES for live events (SSE)")
    feature_push: bool | None = env("NOTIF_FEATURE_PUSH", None, parse.flag, doc="`on`/`off`: overrides NOTIF_FEATURES for Web Push")
    feature_email: bool | None = env("NOTIF_FEATURE_EMAIL", None, parse.flag, doc="`on`/`off`: overrides NOTIF_FEATURES for email")
    feature_digests: bool | None = env("NOTIF_FEATURE_DIGESTS", None, parse.flag, doc="`on`/`off`: overrides NOTIF_FEATURES for digests")
    feature_rate_limits: bool | None = env("NOTIF_FEATURE_RATE_LIMITS", None, parse.flag, doc="`on`/`off`: overrides NOTIF_FEATURES for per-user rate limits")
    feature_scheduling: bool | None = env("NOTIF_FEATURE_SCHEDULING", None, parse.flag, doc="`on`/`off`: overrides NOTIF_FEATURES for scheduled sends")
    feature_priorities: bool | None = env("NOTIF_FEATURE_PRIORITIES", None, parse.flag, doc="`on`/`off`: overrides NOTIF_FEATURES for priorities")
    shadow: bool = env("NOTIF_SHADOW", False, parse.boolean, doc="shadow mode: store everything, deliver nothing; each delivery is recorded as `shadow` for `notif shadow report` (run beside the old worker on a copy of its traffic)")
    default_channels: tuple = env("NOTIF_DEFAULT_CHANNELS", "in_app", parse.csv_list, doc="channels used when neither message nor template names any")
    log_format: str = env("NOTIF_LOG_FORMAT", "json", doc="`json` (one object per line) or `console`")
    log_level: str = env("NOTIF_LOG_LEVEL", "INFO", doc="log level")
    state_dir: str = env("NOTIF_STATE_DIR", ".notif", doc="where `notif dev` keeps its generated secret and endpoints")
    dev: bool = env("NOTIF_DEV", False, parse.boolean, doc="set by `notif dev` on the processes it starts: a NOTIF_JWT_SECRET under 32 bytes is then a warning, not an error (never set it in production)")

    def __repr__(self) -> str:  # secrets and URL passwords never reach a log or a traceback
        parts = (f"{f.name}={_masked(f.name, getattr(self, f.name), f.metadata['secret'])}" for f in fields(self))
        return f"Settings({', '.join(parts)})"

    # -- helpers -----------------------------------------------------------------
    def require(self, attribute: str) -> Any:
        """The value of ``attribute``, or a ConfigError that says what to do."""
        value = getattr(self, attribute)
        if value in (None, ""):
            name = self.__dataclass_fields__[attribute].metadata["env"]
            raise ConfigError(f"{name} is not set; {HELP}")
        return value

    def feature(self, name: str) -> bool:
        """Is capability ``name`` on? Its own variable wins over NOTIF_FEATURES."""
        own = getattr(self, f"feature_{name}")
        return (name in self.features) if own is None else own

    def feature_states(self) -> dict[str, bool]:
        return {name: self.feature(name) for name in FEATURES}

    def queue_url(self, priority: str) -> str:
        return self.require(f"queue_{priority}")

    def priority_of_queue(self, url: str) -> str | None:
        for priority in PRIORITIES:
            if getattr(self, f"queue_{priority}") == url:
                return priority
        return None


def state_file(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("NOTIF_STATE_DIR", ".notif")) / "state.json"


def load_settings(environ: Mapping[str, str] | None = None, use_state: bool = True) -> Settings:
    """Read the environment (overlaid on a running dev stack's state) into Settings."""
    environ = dict(os.environ if environ is None else environ)
    if use_state:
        path = state_file(environ)
        if path.is_file():
            try:
                saved = json.loads(path.read_text())["env"]
            except (OSError, ValueError, KeyError) as exc:
                raise ConfigError(f"{path} is unreadable ({exc}); delete it and restart `notif dev`") from None
            environ = {**saved, **environ}
    values: dict[str, Any] = {}
    for f in fields(Settings):
        name, cast = f.metadata["env"], f.metadata["cast"]
        raw = environ.get(name)
        if raw is None or raw == "":
            value = f.default
            if isinstance(value, str) and cast is not str:
                value = cast(value)
        else:
            try:
                value = cast(raw)
            except ValueError as exc:  # (a secret's value is never shown, nor does its cast's message quote it)
                raise ConfigError(f"{name}={'***' if f.metadata['secret'] else repr(raw)} is invalid: {exc}") from None
        values[f.name] = value
    parse.check_webhooks(values)
    return Settings(**values)


def documented_variables() -> list[tuple[str, Any, str]]:
    """(variable, default, meaning) for every setting: README's configuration table."""
    return [(f.metadata["env"], f.default, f.metadata["doc"]) for f in fields(Settings)]
