// The inbox page: list, live updates over SSE (gapless via Last-Event-ID), unread badge, mark read.
// Every link it renders passes safeLink / dropUnsafeLinks (links.js, loaded before this file).
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const items = new Map(); // notification id -> <li>
  let token = null, source = null, lastId = 0, cursor = null, retryMs = 1000;

  function setBadge(count) { $("badge").textContent = count; $("badge").dataset.count = count; }
  function setStatus(text, live) { $("status").textContent = text; $("status").classList.toggle("live", !!live); }

  function showLogin(reason) {
    if (source) { source.close(); source = null; }
    sessionStorage.removeItem("notif-token");
    token = null;
    $("inbox").hidden = true; $("login").hidden = false;
    $("login-reason").textContent = reason || "";
    setStatus("offline");
  }

  async function api(path, options = {}) {
    const response = await fetch(path, { ...options, headers: { ...(options.headers || {}), Authorization: `Bearer ${token}` } });
    if (response.status === 401) {
      const body = await response.json().catch(() => ({}));
      showLogin(`Token refused: ${body.reason || "unauthorized"}`);
      throw new Error("unauthorized");
    }
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
  }

  function render(n) {
    const li = document.createElement("li");
    li.dataset.id = n.id;
    li.classList.toggle("unread", !n.read);
    const title = document.createElement("div"); title.className = "title"; title.textContent = n.title;
    const body = document.createElement("div"); body.className = "body";
    if (n.html) { // rendered from a template, variables autoescaped; parsed inert, unsafe links dropped
      const inert = document.createElement("template");
      inert.innerHTML = n.html;
      body.append(dropUnsafeLinks(inert.content));
    } else body.textContent = n.message;
    const meta = document.createElement("div"); meta.className = "meta";
    meta.textContent = `${new Date(n.created_at).toLocaleString()} · ${n.priority}${n.type ? " · " + n.type : ""}`;
    li.append(title, body, meta);
    if (n.actions && n.actions.length) {
      const actions = document.createElement("div"); actions.className = "actions";
      for (const action of n.actions) actions.append(actionElement(action));
      li.append(actions);
    }
    li.addEventListener("click", () => markRead(n.id));
    return li;
  }

  function actionElement(action) {
    const href = safeLink(action.url), endpoint = safeLink(action.api_endpoint);
    if (href) {
      const a = document.createElement("a"); a.href = href; a.textContent = action.label; return a;
    }
    if (action.url || !endpoint) { // a link that may not be followed, or nothing to call: its label, as text
      const text = document.createElement("span"); text.className = "inert"; text.textContent = action.label; return text;
    }
    const button = document.createElement("button"); button.type = "button"; button.textContent = action.label;
    button.addEventListener("click", async (event) => {
      event.stopPropagation();
      button.disabled = true;
      try {
        const response = await fetch(endpoint, { method: action.method || "POST", credentials: "same-origin" });
        button.textContent = response.ok ? `${action.label} ✓` : `${action.label} failed (${response.status})`;
      } catch (error) { button.textContent = `${action.label} failed`; }
    });
    return button;
  }

  function add(n, { prepend = false, fresh = false } = {}) {
    if (items.has(n.id)) return;
    const li = render(n);
    if (fresh) li.classList.add("fresh");
    items.set(n.id, li);
    lastId = Math.max(lastId, n.id);
    if (prepend) {
      // keep newest first even if an older id arrives late
      const after = [...$("list").children].find((el) => Number(el.dataset.id) < n.id);
      $("list").insertBefore(li, after || null);
    } else $("list").append(li);
    $("empty").hidden = true;
  }

  function markedRead(ids, all) {
    for (const [id, li] of items) if (all || ids.includes(id)) li.classList.remove("unread");
  }

  async function markRead(id) {
    const li = items.get(id);
    if (!li || !li.classList.contains("unread")) return;
    const result = await api(`/api/notifications/${id}/read`, { method: "POST" });
    markedRead([id], false); setBadge(result.unread);
  }

  async function loadPage() {
    const page = await api(`/api/notifications?limit=20${cursor ? "&cursor=" + cursor : ""}`);
    for (const n of page.items) add(n);
    cursor = page.next_cursor;
    $("more").hidden = !cursor;
    $("empty").hidden = items.size > 0;
  }

  function connect() {
    if (source) source.close();
    const url = `/events?token=${encodeURIComponent(token)}${lastId ? "&last_event_id=" + lastId : ""}`;
    source = new EventSource(url);
    source.onopen = () => { setStatus("live", true); retryMs = 1000; };
    source.addEventListener("notification", (event) => {
      const data = JSON.parse(event.data);
      add(data, { prepend: true, fresh: true });
      setBadge(data.unread_count);
    });
    source.addEventListener("read", (event) => {
      const data = JSON.parse(event.data);
      markedRead(data.ids, data.all); setBadge(data.unread_count);
    });
    source.addEventListener("updated", (event) => { // the producer changed it: the new version, in place
      const data = JSON.parse(event.data);
      const old = items.get(data.id);
      if (old) { const li = render(data); li.classList.add("fresh"); old.replaceWith(li); items.set(data.id, li); }
      setBadge(data.unread_count);
    });
    source.addEventListener("removed", (event) => { // retracted by the producer
      const data = JSON.parse(event.data);
      const li = items.get(data.id);
      if (li) { li.remove(); items.delete(data.id); }
      $("empty").hidden = items.size > 0;
      setBadge(data.unread_count);
    });
    source.onerror = async () => {
      if (source.readyState !== EventSource.CLOSED) { setStatus("reconnecting…"); return; } // the browser retries
      setStatus("reconnecting…");
      // closed for good (e.g. 401 or 503): check the token, then reconnect with a backoff
      try { await api("/api/notifications/unread-count"); } catch (error) { if (!token) return; }
      setTimeout(() => token && connect(), retryMs);
      retryMs = Math.min(retryMs * 2, 30000);
    };
  }

  async function open(newToken) {
    token = newToken;
    sessionStorage.setItem("notif-token", token);
    items.clear(); $("list").replaceChildren(); cursor = null; lastId = 0;
    try {
      const claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
      $("who").textContent = `Signed in as ${claims.sub}`;
    } catch (error) { $("who").textContent = ""; }
    try {
      await loadPage();
      setBadge((await api("/api/notifications/unread-count")).unread);
    } catch (error) { return; }
    $("login").hidden = true; $("inbox").hidden = false;
    connect();
  }

  $("login").addEventListener("submit", (event) => { event.preventDefault(); open($("token-input").value.trim()); });
  $("logout").addEventListener("click", () => showLogin(""));
  $("more").addEventListener("click", loadPage);
  $("read-all").addEventListener("click", async () => {
    const result = await api("/api/notifications/read-all", { method: "POST" });
    markedRead([], true); setBadge(result.unread);
  });

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
        await api("/api/push/subscriptions", { method: "POST", headers: { "Content-Type": "application/json" },
                                               body: JSON.stringify(subscription) });
        button.textContent = "Push enabled ✓"; button.disabled = true;
      } catch (error) { button.textContent = "Push unavailable"; }
    });
  }
  setUpPush().catch(() => {});

  const params = new URLSearchParams(location.search);
  const fromUrl = params.get("token");
  if (fromUrl) history.replaceState(null, "", location.pathname); // keep the token out of history
  const saved = fromUrl || sessionStorage.getItem("notif-token");
  if (saved) open(saved); else showLogin("");
})();
