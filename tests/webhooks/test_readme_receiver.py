"""README › Webhooks' receiver example, run as written against requests notif signs."""
import json
import re
import time

from helpers import ROOT
from notif.models import utcnow
from notif.webhooks.events import body
from notif.webhooks.signing import headers, new_webhook_id, secret_key
from webhook_receiver import SECRET


def test_the_readme_receiver_accepts_what_notif_signs_and_refuses_the_rest():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Webhooks"):readme.index("## CLI")]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    handled = []
    scope = {"__name__": "__main__", "handle": lambda webhook_id, event: handled.append((webhook_id, event))}
    exec(code.replace('"whsec_…"', repr(SECRET)), scope)
    client = scope["app"].test_client()
    sent = body("notification.read", utcnow(), {"notification_id": 1, "user_id": "ana"}).encode()
    webhook_id = new_webhook_id()
    signed = headers(secret_key(SECRET), webhook_id, int(time.time()), sent)
    assert client.post("/hooks/notif", data=sent, headers={**signed, "content-type": "application/json"}).status_code == 204
    assert handled == [(webhook_id, json.loads(sent))]
    for tampered in ({**signed, "webhook-id": new_webhook_id()},
                     headers(secret_key(SECRET), webhook_id, int(time.time()) - 600, sent)):
        assert client.post("/hooks/notif", data=sent, headers=tampered).status_code == 401
    assert len(handled) == 1
