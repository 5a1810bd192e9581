// notif's own inbox page: a host of <notif-inbox> (notif-inbox.js) that gets its token from the URL, the tab's
// session storage or a form, and offers Web Push through its service worker.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const inbox = $("inbox");

  function showLogin(reason) {
    sessionStorage.removeItem("notif-token");
    inbox.hidden = true; $("logout").hidden = true; $("who").textContent = "";
    $("login").hidden = false;
    $("login-reason").textContent = reason || "";
  }

  function open(token) {
    sessionStorage.setItem("notif-token", token);
    try {
      const claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
      $("who").textContent = `Signed in as ${claims.sub}`;
    } catch (error) { $("who").textContent = ""; }
    $("login").hidden = true; inbox.hidden = false; $("logout").hidden = false;
    inbox.token = token; // the component connects, or reconnects with the new token from where it stopped
  }

  // the server refused the token (expired, malformed, revoked): ask for another one
  inbox.addEventListener("notif-token-expired", (event) => showLogin(`Token refused: ${event.detail.reason}`));
  $("login").addEventListener("submit", (event) => { event.preventDefault(); open($("token-input").value.trim()); });
  $("logout").addEventListener("click", () => showLogin(""));

  // Web Push: a service worker shows pushes and handles their buttons; this browser subscribes on request
  function b64ToBytes(text) {
    const padded = (text + "=".repeat((4 - (text.length % 4)) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  }

  async function setUpPush() {
    if (!("serviceWorker" in navigator) || !("PushManager" in window)) return;
    const registration = await navigator.serviceWorker.register("/sw.js");
    document.body.dataset.serviceWorker = "registered";
    const keyResponse = await fetch("/api/push/vapid-public-key");
    if (!keyResponse.ok) return; // push is not configured on this server
    const { public_key: key } = await keyResponse.json();
    const button = $("enable-push");
    button.hidden = false;
    button.addEventListener("click", async () => {
      try {
        if ((await Notification.requestPermission()) !== "granted") { button.textContent = "Push blocked"; return; }
        const subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64ToBytes(key) });
        const response = await fetch("/api/push/subscriptions", {
          method: "POST", body: JSON.stringify(subscription),
          headers: { "Content-Type": "application/json", Authorization: `Bearer ${inbox.token}` },
        });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        button.textContent = "Push enabled ✓"; button.disabled = true;
      } catch (error) { button.textContent = "Push unavailable"; }
    });
  }
  setUpPush().catch(() => {});

  const fromUrl = new URLSearchParams(location.search).get("token");
  if (fromUrl) history.replaceState(null, "", location.pathname); // keep the token out of history
  const saved = fromUrl || sessionStorage.getItem("notif-token");
  if (saved) open(saved); else showLogin("");
})();
