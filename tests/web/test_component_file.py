"""GET /notif-inbox.js: the component a host page loads with one script tag."""
from notif.web.page import component_bundle


def test_the_component_is_one_script_with_its_link_rules_and_revalidates_cheaply(asgi):
    client = asgi["client"]
    response = client.get("/notif-inbox.js", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    body = response.text
    assert body.startswith("(() => {") and body.rstrip().endswith("})();")  # nothing leaks into the host's globals
    assert "function safeLink(" in body and 'customElements.define("notif-inbox"' in body
    assert response.content == component_bundle()[0] and "content-encoding" not in response.headers
    zipped = client.get("/notif-inbox.js", headers={"Accept-Encoding": "gzip, br"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.text == body  # (the client unzips)
    assert int(zipped.headers["content-length"]) < len(response.content) / 3
    again = client.get("/notif-inbox.js", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
