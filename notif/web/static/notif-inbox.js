// <notif-inbox>: notif's inbox as a web component a host app drops into its own pages, and NotifClient, the
// headless client under it. One file, no framework, no build step:
//
//   <script src="https://notif.example.com/notif-inbox.js" defer></script>
//   <notif-inbox server="https://notif.example.com" token="…JWT…"></notif-inbox>
//
// notif serves this file at /notif-inbox.js wrapped in one function together with links.js (safeLink,
// LINK_ATTRIBUTES), so nothing leaks into the host page but `NotifClient` and the element itself.
// The host's origin must be listed in notif's NOTIF_CORS_ORIGINS. Docs: docs/inbox-component.md.
"use strict";

const SCRIPT_ORIGIN = (() => {
  try { return new URL(document.currentScript.src).origin; } catch (error) { return location.origin; }
})();

// ---------------------------------------------------------------------------------------------------------------
// NotifClient: the API and the live stream, as methods and DOM events (for hosts that draw their own UI)
// ---------------------------------------------------------------------------------------------------------------

/** An answer other than 2xx (status 0: notif could not be reached, or the browser refused the answer). */
class NotifError extends Error {
  constructor(message, status, body) { super(message); this.name = "NotifError"; this.status = status; this.body = body; }
}

// what /events sends (README › Live events); each becomes a DOM event of the same name on the client
const STREAM_EVENTS = ["notification", "read", "seen", "unread", "archived", "updated", "removed", "counts"];
const MAX_RETRY_MS = 30000;

class NotifClient extends EventTarget {
  /**
   * @param {{server?: string, token?: string}} options  server: notif's origin (default: where this file came from)
   *
   * Events (CustomEvent, data in `detail`): the stream's events (notification, read, seen, unread, archived,
   * updated, removed, counts); `state` ({state, reason}: connecting, live, reconnecting, expired, error, closed);
   * `reconnected` (the stream came back: refresh what you show); `token-expired` ({reason}: set `token` to resume).
   */
  constructor({ server = SCRIPT_ORIGIN, token = null } = {}) {
    super();
    this.server = String(server || SCRIPT_ORIGIN).replace(/\/+$/, "");
    this._token = token || null;
    this.lastEventId = 0; // the newest notification id received: the stream resumes after it
    this.state = "idle";
    this._source = null;
    this._timer = null;
    this._retryMs = 1000;
    this._opened = 0;
    this._wanted = false;
    this._expiredToken = null;
  }

  get token() { return this._token; }

  /** Replace the token at any time; a stream that is wanted reconnects with it, from lastEventId. */
  set token(value) {
    value = value || null;
    if (value === this._token) return;
    this._token = value;
    if (this._wanted && value) this._open();
  }

  // -- the API ----------------------------------------------------------------------------------------------------

  async request(path, { method = "GET", body } = {}) {
    if (!this._token) throw this._expired("no token");
    const headers = { Authorization: `Bearer ${this._token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(this.server + path, {
        method, headers, mode: "cors", credentials: "omit", cache: "no-store",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new NotifError(`cannot reach ${this.server}: offline, or this page's origin is not in its NOTIF_CORS_ORIGINS`, 0);
    }
    const data = await response.json().catch(() => ({}));
    if (response.status === 401) throw this._expired(data.reason || "unauthorized");
    if (!response.ok) {
      const reason = data.reason || (Array.isArray(data.detail) ? data.detail.map((d) => d.msg).join("; ") : data.detail);
      throw new NotifError(`${method} ${path}: HTTP ${response.status}${reason ? ` (${reason})` : ""}`, response.status, data);
    }
    return data;
  }

  /** A page of notifications, newest first: {items, next_cursor}. status: unread, unseen, archived, all (default: not archived). */
  list({ status, type, cursor, limit = 20 } = {}) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (status) query.set("status", status);
    if (type) query.set("type", type);
    if (cursor) query.set("cursor", cursor);
    return this.request(`/api/notifications?${query}`);
  }

  /** {unread, unseen, total} */
  counts() { return this.request("/api/notifications/counts"); }
  markRead(id) { return this.request(`/api/notifications/${encodeURIComponent(id)}/read`, { method: "POST" }); }
  markAllRead() { return this.request("/api/notifications/read-all", { method: "POST" }); }
  markUnread(id) { return this.request(`/api/notifications/${encodeURIComponent(id)}/unread`, { method: "POST" }); }
  /** ids: a list of notification ids, or "all" */
  markSeen(ids) { return this.request("/api/notifications/seen", { method: "POST", body: ids === "all" ? { all: true } : { ids } }); }
  archive(id) { return this.request(`/api/notifications/${encodeURIComponent(id)}/archive`, { method: "POST" }); }
  unarchive(id) { return this.request(`/api/notifications/${encodeURIComponent(id)}/archive`, { method: "DELETE" }); }
  preferences() { return this.request("/api/preferences"); }
  savePreferences(preferences) { return this.request("/api/preferences", { method: "PUT", body: preferences }); }
  /** {channels: [...], types: [{type, critical}]}: what preferences may name */
  preferenceOptions() { return this.request("/api/preferences/options"); }

  // -- the live stream --------------------------------------------------------------------------------------------

  /** Open the live stream (and keep it open: reconnects with a backoff, resumes after lastEventId). */
  connect() { this._wanted = true; this._open(); }

  /** Close the stream for good. */
  close() {
    this._wanted = false;
    clearTimeout(this._timer);
    if (this._source) { this._source.close(); this._source = null; }
    this._setState("closed");
  }

  _open() {
    clearTimeout(this._timer);
    if (this._source) { this._source.close(); this._source = null; }
    if (!this._token) { this._expired("no token"); return; }
    this._setState(this._opened ? "reconnecting" : "connecting");
    // once a stream has been open, every reopening resumes after what it received (0: replay everything since)
    const after = this._opened || this.lastEventId ? `&last_event_id=${this.lastEventId}` : "";
    const source = new EventSource(`${this.server}/events?token=${encodeURIComponent(this._token)}${after}`);
    this._source = source;
    source.onopen = () => {
      if (source !== this._source) return;
      this._retryMs = 1000;
      const again = this._opened++ > 0;
      this._setState("live");
      if (again) this._emit("reconnected", {});
    };
    for (const name of STREAM_EVENTS) {
      source.addEventListener(name, (event) => {
        if (source !== this._source) return;
        let data;
        try { data = JSON.parse(event.data); } catch (error) { return; }
        if (name === "notification" && data && Number.isInteger(data.id)) this.lastEventId = Math.max(this.lastEventId, data.id);
        this._emit(name, data);
      });
    }
    // Every end of the stream comes here: the server going away, a network cut, or the end of a token's life
    // (notif ends a stream when its token expires). The browser's own retry would reuse the old token and the
    // old position; this client asks why first, then reopens with the token and position it has now.
    source.onerror = () => {
      if (source !== this._source) return;
      source.close();
      this._source = null;
      this._setState("reconnecting");
      this.counts().then(
        (counts) => { this._emit("counts", { unread_count: counts.unread, unseen_count: counts.unseen, total_count: counts.total }); this._retry(250); },
        (error) => { if (error.status !== 401) this._retry(this._retryMs); },
      );
    };
  }

  _retry(delayMs) {
    if (!this._wanted) return;
    clearTimeout(this._timer);
    const jitter = Math.random() * 0.3 * delayMs;
    this._timer = setTimeout(() => this._wanted && this._open(), delayMs + jitter);
    this._retryMs = Math.min(this._retryMs * 2, MAX_RETRY_MS);
  }

  _expired(reason) {
    if (this._source) { this._source.close(); this._source = null; }
    clearTimeout(this._timer);
    this._setState("expired", reason);
    if (this._expiredToken !== this._token || this._token === null) { // once per token
      this._expiredToken = this._token;
      this._emit("token-expired", { reason });
    }
    return new NotifError(`token refused: ${reason}`, 401, { reason });
  }

  _setState(state, reason = "") {
    if (state === this.state && !reason) return;
    this.state = state;
    this._emit("state", { state, reason });
  }

  _emit(name, detail) { this.dispatchEvent(new CustomEvent(name, { detail })); }
}

// ---------------------------------------------------------------------------------------------------------------
// <notif-inbox>
// ---------------------------------------------------------------------------------------------------------------

const DEFAULT_STRINGS = {
  bell: "Notifications",
  bellUnseen: "Notifications, {count} unseen",
  heading: "Notifications",
  tabUnread: "Unread",
  tabAll: "All",
  tabArchived: "Archived",
  markAllRead: "Mark all read",
  markRead: "Mark read",
  markUnread: "Mark unread",
  archive: "Archive",
  unarchive: "Move to inbox",
  loadMore: "Load more",
  loading: "Loading…",
  emptyAll: "No notifications yet",
  emptyUnread: "You're all caught up",
  emptyArchived: "Nothing archived",
  newNotification: "New notification: {title}",
  preferences: "Notification preferences",
  back: "Back to notifications",
  channels: "Channels",
  types: "Notification types",
  alwaysOn: "always on",
  saved: "Preferences saved",
  saveFailed: "Could not save: {reason}",
  actionDone: "{label} ✓",
  actionFailed: "{label} failed",
  state_connecting: "Connecting…",
  state_live: "Live",
  state_reconnecting: "Reconnecting…",
  state_expired: "Session expired",
  state_error: "Cannot reach notifications",
  state_closed: "Offline",
  channel_in_app: "In-app",
  channel_push: "Push",
  channel_email: "Email",
  channel_sse: "Live updates",
};

const TABS = [["unread", "tabUnread", "emptyUnread"], ["inbox", "tabAll", "emptyAll"], ["archived", "tabArchived", "emptyArchived"]];

// What a notification's html may keep in the host's page (it was rendered by a sandboxed, autoescaping template;
// this is the second line, for a page without a Content-Security-Policy): these elements and attributes only,
// links that safeLink allows. Anything else is unwrapped to its text, or dropped with its content.
const KEEP_TAGS = new Set(["A", "ABBR", "B", "BLOCKQUOTE", "BR", "CODE", "DEL", "DIV", "EM", "H1", "H2", "H3", "H4", "H5",
  "H6", "HR", "I", "IMG", "INS", "KBD", "LI", "MARK", "OL", "P", "PRE", "Q", "S", "SMALL", "SPAN", "STRONG", "SUB", "SUP",
  "TABLE", "TBODY", "TD", "TFOOT", "TH", "THEAD", "TR", "U", "UL"]);
const DROP_TAGS = new Set(["SCRIPT", "STYLE", "TEMPLATE", "NOSCRIPT", "IFRAME", "FRAME", "OBJECT", "EMBED", "TEXTAREA",
  "SELECT", "TITLE", "SVG", "MATH", "LINK", "META", "BASE", "FORM", "INPUT", "BUTTON"]);
const KEEP_ATTRIBUTES = new Set(["href", "src", "alt", "title", "colspan", "rowspan", "lang", "dir"]);

function sanitize(html) {
  // parsed into a document of its own, without a browsing context: nothing in it loads or runs
  const parsed = new DOMParser().parseFromString(`<!doctype html><body>${html}`, "text/html");
  const walk = (parent) => {
    for (const node of [...parent.childNodes]) {
      if (node.nodeType === Node.TEXT_NODE) continue;
      if (node.nodeType !== Node.ELEMENT_NODE) { node.remove(); continue; }
      const tag = node.tagName.toUpperCase();
      if (DROP_TAGS.has(tag)) { node.remove(); continue; }
      walk(node);
      if (!KEEP_TAGS.has(tag)) { node.replaceWith(...node.childNodes); continue; }
      for (const attribute of [...node.attributes]) {
        const name = attribute.name.toLowerCase();
        if (!KEEP_ATTRIBUTES.has(name) || (LINK_ATTRIBUTES.includes(name) && !safeLink(attribute.value))) {
          node.removeAttribute(attribute.name);
        }
      }
      if (tag === "A" && node.hasAttribute("href")) node.setAttribute("rel", "noopener noreferrer");
    }
  };
  walk(parsed.body);
  const fragment = document.createDocumentFragment();
  fragment.append(...[...parsed.body.childNodes].map((node) => document.adoptNode(node)));
  return fragment;
}

const STYLE = `
:host { --notif-accent: #2563eb; --notif-bg: #fff; --notif-fg: #1d2330; --notif-muted: #667085; --notif-border: #dde2ea;
  --notif-unread-bg: #f3f7ff; --notif-hover-bg: #f6f7f9; --notif-badge-bg: #d92d20; --notif-badge-fg: #fff;
  --notif-radius: 10px; --notif-panel-width: 380px; --notif-panel-height: 480px; --notif-font: system-ui, sans-serif;
  --notif-shadow: 0 12px 32px rgba(16, 24, 40, .18); --notif-z: 1000;
  position: relative; display: inline-block; font: 14px/1.45 var(--notif-font); color: var(--notif-fg); }
:host([theme="dark"]) { --notif-bg: #1b1f27; --notif-fg: #e6e8ec; --notif-muted: #98a2b3; --notif-border: #343a46;
  --notif-unread-bg: #1f2a3d; --notif-hover-bg: #252b36; --notif-accent: #7aa2ff; --notif-shadow: 0 12px 32px rgba(0,0,0,.5); }
@media (prefers-color-scheme: dark) {
  :host(:not([theme="light"])) { --notif-bg: #1b1f27; --notif-fg: #e6e8ec; --notif-muted: #98a2b3; --notif-border: #343a46;
    --notif-unread-bg: #1f2a3d; --notif-hover-bg: #252b36; --notif-accent: #7aa2ff; --notif-shadow: 0 12px 32px rgba(0,0,0,.5); }
}
[hidden] { display: none !important; }
button { font: inherit; color: inherit; }
.bell { position: relative; display: inline-flex; align-items: center; justify-content: center; width: 40px; height: 40px;
  border: 1px solid var(--notif-border); border-radius: 50%; background: var(--notif-bg); cursor: pointer; padding: 0; }
.bell:focus-visible, .panel button:focus-visible, .item:focus-visible, input:focus-visible {
  outline: 2px solid var(--notif-accent); outline-offset: 2px; }
.bell svg { width: 22px; height: 22px; fill: currentColor; }
.badge { position: absolute; top: -4px; right: -4px; min-width: 18px; height: 18px; padding: 0 5px; box-sizing: border-box;
  border-radius: 9px; background: var(--notif-badge-bg); color: var(--notif-badge-fg); font-size: 11px; font-weight: 700;
  line-height: 18px; text-align: center; }
.panel { position: absolute; right: 0; top: calc(100% + 8px); z-index: var(--notif-z); width: var(--notif-panel-width);
  max-width: calc(100vw - 16px); background: var(--notif-bg); color: var(--notif-fg); border: 1px solid var(--notif-border);
  border-radius: var(--notif-radius); box-shadow: var(--notif-shadow); display: flex; flex-direction: column;
  max-height: var(--notif-panel-height); text-align: left; }
:host([inline]) { display: block; }
:host([inline]) .panel { position: static; width: auto; max-width: none; max-height: none; box-shadow: none; margin-top: 8px; }
.head { display: flex; align-items: center; gap: 8px; padding: 12px 14px 6px; }
.head h2 { font-size: 15px; margin: 0; flex: 1; }
.state { font-size: 11px; color: var(--notif-muted); }
:host([state="live"]) .state { color: #12b76a; }
.link-button { border: 0; background: none; color: var(--notif-accent); cursor: pointer; padding: 2px 4px; font-size: 13px; }
.icon-button { border: 0; background: none; cursor: pointer; padding: 4px; display: inline-flex; color: var(--notif-muted); }
.icon-button svg { width: 18px; height: 18px; fill: currentColor; }
.tabs { display: flex; gap: 4px; padding: 0 10px; border-bottom: 1px solid var(--notif-border); }
.tab { border: 0; background: none; padding: 8px 8px; cursor: pointer; color: var(--notif-muted); border-bottom: 2px solid transparent; }
.tab[aria-selected="true"] { color: var(--notif-fg); border-bottom-color: var(--notif-accent); font-weight: 600; }
.view { overflow: auto; flex: 1; min-height: 0; }
.list { list-style: none; margin: 0; padding: 0; }
.item { display: flex; gap: 10px; padding: 10px 14px; border-bottom: 1px solid var(--notif-border); cursor: pointer; }
.item:hover { background: var(--notif-hover-bg); }
.item.unread { background: var(--notif-unread-bg); }
.item .dot { flex: none; width: 8px; height: 8px; margin-top: 6px; border-radius: 50%; background: transparent; }
.item.unread .dot { background: var(--notif-accent); }
.item .main { flex: 1; min-width: 0; }
.item .title { font-weight: 600; }
.item .body { overflow-wrap: anywhere; }
.item .body p { margin: 2px 0; }
.item .body img { max-width: 100%; }
.item .body a { color: var(--notif-accent); }
.item .body blockquote { margin: 4px 0; padding-left: 8px; border-left: 3px solid var(--notif-border); color: var(--notif-muted); }
.item .body ul, .item .body ol { margin: 2px 0; padding-left: 18px; }
.item .meta { font-size: 12px; color: var(--notif-muted); margin-top: 2px; }
.item .actions, .item .tools { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 6px; }
.item .actions a, .item .actions button { font-size: 13px; border: 1px solid var(--notif-border); border-radius: 6px;
  padding: 3px 10px; background: var(--notif-bg); color: var(--notif-accent); text-decoration: none; cursor: pointer; }
.item .actions .inert { font-size: 13px; color: var(--notif-muted); }
.item .tools button { border: 0; background: none; padding: 0; font-size: 12px; color: var(--notif-muted); cursor: pointer; }
.item .tools button:hover { color: var(--notif-accent); text-decoration: underline; }
.item.fresh { animation: fresh 1.6s ease-out; }
@keyframes fresh { from { background: rgba(250, 204, 21, .35); } }
.empty, .loading, .error { padding: 24px 14px; text-align: center; color: var(--notif-muted); margin: 0; }
.error { color: #d92d20; }
.more { display: block; margin: 8px auto 12px; }
.prefs { padding: 6px 14px 14px; }
.prefs h3 { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--notif-muted); margin: 12px 0 4px; }
.prefs label { display: flex; align-items: center; gap: 8px; padding: 5px 0; cursor: pointer; }
.prefs label span { flex: 1; }
.prefs small { color: var(--notif-muted); }
.prefs input { width: 16px; height: 16px; accent-color: var(--notif-accent); }
.prefs .note { font-size: 12px; color: var(--notif-muted); min-height: 1.4em; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
`;

let sheet = null;
function styleSheet() {
  if (sheet === null && "adoptedStyleSheets" in Document.prototype) {
    sheet = new CSSStyleSheet(); // constructed: allowed under a host page's strict style-src
    sheet.replaceSync(STYLE);
  }
  return sheet;
}

const BELL_ICON = "M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22zm7-6v-5a7 7 0 0 0-5.5-6.84V3.5a1.5 1.5 0 0 0-3 0v.66A7 7 0 0 0 5 11v5l-2 2v1h18v-1l-2-2z";
const GEAR_ICON = "M19.4 13a7.5 7.5 0 0 0 0-2l2.1-1.6-2-3.5-2.5 1a7.6 7.6 0 0 0-1.7-1L15 3h-4l-.4 2.9a7.6 7.6 0 0 0-1.7 1l-2.5-1-2 3.5L6.6 11a7.5 7.5 0 0 0 0 2l-2.1 1.6 2 3.5 2.5-1a7.6 7.6 0 0 0 1.7 1L11 21h4l.4-2.9a7.6 7.6 0 0 0 1.7-1l2.5 1 2-3.5L19.4 13zM13 15.5a3.5 3.5 0 1 1 0-7 3.5 3.5 0 0 1 0 7z";
const BACK_ICON = "M15.5 4.5 8 12l7.5 7.5 1.4-1.4L10.8 12l6.1-6.1z";

function svgIcon(path) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  const p = document.createElementNS("http://www.w3.org/2000/svg", "path");
  p.setAttribute("d", path);
  svg.append(p);
  return svg;
}

function el(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") element.className = value;
    else if (key === "text") element.textContent = value;
    else if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  element.append(...children);
  return element;
}

function humanize(type) {
  const words = String(type).toLowerCase().replace(/[_-]+/g, " ").trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

class NotifInbox extends HTMLElement {
  static get observedAttributes() { return ["token", "server", "open"]; }

  constructor() {
    super();
    this._strings = { ...NotifInbox.strings };
    this._items = new Map(); // id -> {data, li}
    this._counted = new Set(); // ids of notifications this element received live
    this._tab = "inbox";
    this._cursor = null;
    this._counts = { unread: 0, unseen: 0, total: 0 };
    this._loaded = false;
    this._loading = null;
    this._seenTimer = null;
    this._view = "inbox";
    this.client = null;
    this._build();
  }

  /** Replaceable strings for translation: element.strings = {heading: "Benachrichtigungen", …} (merged over the defaults). */
  get strings() { return this._strings; }
  set strings(value) { this._strings = { ...NotifInbox.strings, ...(value || {}) }; this._relabel(); this._renderAll(); }

  get token() { return this._tokenValue || this.getAttribute("token"); }
  /** Replace the token at any time (a property, kept out of the DOM, or the `token` attribute). */
  set token(value) { this._tokenValue = value; this._tokenChanged(); }

  get server() { return this.getAttribute("server") || SCRIPT_ORIGIN; }
  set server(value) { this.setAttribute("server", value); }

  get open() { return this.hasAttribute("open"); }
  set open(value) { this.toggleAttribute("open", !!value); }

  connectedCallback() {
    if (!this.client) this._showState("closed");
    document.addEventListener("click", this._outside);
    document.addEventListener("keydown", this._escape);
    document.addEventListener("visibilitychange", this._visible);
    this._start();
  }

  disconnectedCallback() {
    document.removeEventListener("click", this._outside);
    document.removeEventListener("keydown", this._escape);
    document.removeEventListener("visibilitychange", this._visible);
    if (this.client) this.client.close();
    this.client = null;
  }

  attributeChangedCallback(name, before, after) {
    if (before === after) return;
    if (name === "token") this._tokenChanged();
    else if (name === "server" && this.client) { this.client.close(); this.client = null; this._start(); }
    else if (name === "open") this._openChanged();
  }

  // -- structure -----------------------------------------------------------------------------------------------

  _build() {
    const root = this.attachShadow({ mode: "open" });
    const adopted = styleSheet();
    if (adopted) root.adoptedStyleSheets = [adopted];
    else root.append(el("style", { text: STYLE }));
    this._bell = el("button", { class: "bell", part: "bell", type: "button", "aria-haspopup": "dialog",
                                "aria-expanded": "false", "aria-controls": "panel", onclick: () => { this.open = !this.open; } },
      svgIcon(BELL_ICON));
    this._badge = el("span", { class: "badge", part: "badge", hidden: true, "aria-hidden": "true" });
    this._bell.append(this._badge);
    this._heading = el("h2", { id: "heading" });
    this._state = el("span", { class: "state", part: "state" });
    this._readAll = el("button", { class: "link-button", type: "button", "data-action": "read-all", part: "read-all",
                                   onclick: () => this._act(() => this.client.markAllRead(), (r) => this._applyRead([], true, r.unread, r.unseen)) });
    this._gear = el("button", { class: "icon-button", type: "button", "data-action": "preferences", part: "preferences-button",
                                onclick: () => this._showView(this._view === "preferences" ? "inbox" : "preferences") }, svgIcon(GEAR_ICON));
    const head = el("div", { class: "head", part: "header" }, this._heading, this._state, this._readAll, this._gear);
    this._tabs = el("div", { class: "tabs", role: "tablist", part: "tabs", onkeydown: (e) => this._tabKey(e) });
    for (const [status] of TABS) {
      this._tabs.append(el("button", { class: "tab", role: "tab", type: "button", "data-status": status, part: "tab",
                                       "aria-selected": String(status === this._tab), tabindex: status === this._tab ? "0" : "-1",
                                       onclick: () => this._selectTab(status) }));
    }
    this._list = el("ul", { class: "list", part: "list", role: "list" });
    this._empty = el("p", { class: "empty", part: "empty", hidden: true });
    this._message = el("p", { class: "loading", part: "message", hidden: true });
    this._more = el("button", { class: "link-button more", type: "button", "data-action": "more", part: "more", hidden: true,
                                onclick: () => this._loadMore() });
    this._inboxView = el("div", { class: "view", part: "inbox", role: "tabpanel" }, this._message, this._list, this._empty, this._more);
    this._prefsView = el("div", { class: "view prefs", part: "preferences", hidden: true });
    this._announcer = el("div", { class: "sr", "aria-live": "polite", role: "status" });
    this._panel = el("div", { class: "panel", id: "panel", part: "panel", role: "dialog", "aria-labelledby": "heading", hidden: true },
      head, this._tabs, this._inboxView, this._prefsView);
    root.append(this._bell, this._panel, this._announcer);
    this._outside = (event) => { if (this.open && !this.hasAttribute("inline") && !event.composedPath().includes(this)) this.open = false; };
    this._escape = (event) => { // wherever the focus is (a button that just went away leaves it on the page)
      if (event.key === "Escape" && this.open && !this.hasAttribute("inline")) { this.open = false; this._bell.focus(); }
    };
    this._visible = () => { if (document.visibilityState === "visible" && this.open) this._markShownSeen(); };
    this._relabel();
  }

  _relabel() {
    const s = this._strings;
    this._heading.textContent = s.heading;
    this._readAll.textContent = s.markAllRead;
    this._gear.setAttribute("aria-label", this._view === "preferences" ? s.back : s.preferences);
    this._gear.title = this._gear.getAttribute("aria-label");
    this._more.textContent = s.loadMore;
    for (const button of this._tabs.children) {
      const [status, label] = TABS.find(([name]) => name === button.dataset.status);
      button.textContent = s[label] + (status === "unread" && this._counts.unread ? ` (${this._counts.unread})` : "");
    }
    this._setBadge();
    if (this.isConnected) this._showState(this.client ? this.client.state : "closed");
  }

  _fmt(name, values = {}) {
    return String(this._strings[name] ?? DEFAULT_STRINGS[name] ?? name).replace(/\{(\w+)\}/g, (_, key) => values[key] ?? "");
  }

  // -- the client ------------------------------------------------------------------------------------------------

  _start() {
    if (this.client || !this.isConnected) return;
    const token = this.token;
    if (!token) return;
    const client = this.client = new NotifClient({ server: this.server, token });
    let first = true;
    client.addEventListener("state", (e) => {
      this._showState(e.detail.state, e.detail.reason);
      if (e.detail.state === "live" && first) { first = false; this._caughtUp(); }
    });
    client.addEventListener("token-expired", (e) => {
      this.dispatchEvent(new CustomEvent("notif-token-expired", { bubbles: true, composed: true, detail: e.detail }));
    });
    client.addEventListener("notification", (e) => this._onNotification(e.detail));
    client.addEventListener("read", (e) => this._applyRead(e.detail.ids, e.detail.all, e.detail.unread_count, e.detail.unseen_count));
    client.addEventListener("seen", (e) => this._applySeen(e.detail.ids, e.detail.all, e.detail.unread_count, e.detail.unseen_count));
    client.addEventListener("unread", (e) => this._applyUnread(e.detail.ids, e.detail.unread_count, e.detail.unseen_count));
    client.addEventListener("archived", (e) => this._applyArchived(e.detail.id, e.detail.archived, e.detail));
    client.addEventListener("updated", (e) => this._onUpdated(e.detail));
    client.addEventListener("removed", (e) => this._remove(e.detail.id, { unread: e.detail.unread_count }));
    client.addEventListener("counts", (e) => this._setCounts({ unread: e.detail.unread_count, unseen: e.detail.unseen_count, total: e.detail.total_count }));
    client.addEventListener("reconnected", () => this._refresh());
    this._loadCounts();
    client.connect();
    if (this.open) this._ensureLoaded();
  }

  /** The stream is subscribed: from now on nothing is missed. What happened before it is read once more (counts,
   * the loaded items), and the newest id noted, so that a later reconnect replays everything after it. */
  async _caughtUp() {
    this._loadCounts();
    if (this._loaded) await this._refresh();
    try {
      const newest = (await this.client.list({ status: "all", limit: 1 })).items[0];
      if (newest) this.client.lastEventId = Math.max(this.client.lastEventId, newest.id);
    } catch (error) { this._fail(error); }
  }

  _tokenChanged() {
    const token = this.token;
    if (!this.client) { this._start(); return; }
    const wasExpired = this.client.state === "expired";
    this.client.token = token; // a stream that is open or wanted reconnects with it, from its last event
    if (wasExpired && token) { // resume: the stream from where it stopped, and what the panel shows
      if (!this.client._wanted) this.client.connect();
      this._loadCounts();
      if (this._loaded) this._refresh();
    }
  }

  async _loadCounts() {
    try { this._setCounts(await this.client.counts()); } catch (error) { this._fail(error); }
  }

  _showState(state, reason = "") {
    this.setAttribute("state", state);
    this._state.textContent = this._strings[`state_${state}`] || "";
    this._state.title = reason || "";
  }

  _fail(error) {
    if (error && error.status === 401) return; // the client said token-expired; the host answers with a new token
    if (error && error.status === 0) this._showState("error", error.message);
    this._message.className = "error";
    this._message.textContent = error ? error.message : "";
    this._message.hidden = false;
  }

  // -- counts and badge ------------------------------------------------------------------------------------------

  _setCounts(counts) {
    for (const key of ["unread", "unseen", "total"]) if (Number.isInteger(counts[key])) this._counts[key] = counts[key];
    this._setBadge();
    const unreadTab = this._tabs.querySelector('[data-status="unread"]');
    unreadTab.textContent = this._strings.tabUnread + (this._counts.unread ? ` (${this._counts.unread})` : "");
  }

  _setBadge() {
    const unseen = this._counts.unseen;
    this._badge.textContent = unseen > 99 ? "99+" : String(unseen);
    this._badge.hidden = unseen === 0;
    this._badge.dataset.count = String(unseen);
    this._bell.setAttribute("aria-label", unseen ? this._fmt("bellUnseen", { count: unseen }) : this._strings.bell);
  }

  // -- the list --------------------------------------------------------------------------------------------------

  _openChanged() {
    const open = this.open;
    this._panel.hidden = !open;
    this._bell.setAttribute("aria-expanded", String(open));
    if (open) { this._ensureLoaded().then(() => this._markShownSeen()); }
  }

  async _ensureLoaded() {
    if (this._loaded || !this.client) return;
    this._loaded = true;
    await this._loadPage();
  }

  _selectTab(status) {
    if (status === this._tab) return;
    this._tab = status;
    for (const button of this._tabs.children) {
      const selected = button.dataset.status === status;
      button.setAttribute("aria-selected", String(selected));
      button.tabIndex = selected ? 0 : -1;
    }
    this._showView("inbox");
    this._reset();
    this._loadPage().then(() => this._markShownSeen());
  }

  _tabKey(event) {
    if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
    const order = TABS.map(([name]) => name);
    const next = order[(order.indexOf(this._tab) + (event.key === "ArrowRight" ? 1 : order.length - 1)) % order.length];
    this._selectTab(next);
    this._tabs.querySelector(`[data-status="${next}"]`).focus();
  }

  _reset() {
    this._items.clear();
    this._list.replaceChildren();
    this._cursor = null;
    this._more.hidden = true;
    this._empty.hidden = true;
  }

  _loadPage() {
    if (!this.client) return Promise.resolve();
    if (this._loading) return this._loading;
    const tab = this._tab;
    this._message.className = "loading";
    this._message.textContent = this._strings.loading;
    this._message.hidden = this._items.size > 0;
    const status = tab === "inbox" ? undefined : tab;
    this._loading = this.client.list({ status, cursor: this._cursor, limit: Number(this.getAttribute("page-size")) || 20 })
      .then((page) => {
        if (tab !== this._tab) return;
        this._message.hidden = true;
        for (const item of page.items) this._add(item);
        this._cursor = page.next_cursor;
        this._more.hidden = !this._cursor;
        this._updateEmpty();
        if (this.open) this._markShownSeen();
      })
      .catch((error) => this._fail(error))
      .finally(() => { this._loading = null; this._updateEmpty(); });
    return this._loading;
  }

  /** "Load more": the next page, and the keyboard's focus on its first item (the button may go away). */
  async _loadMore() {
    const before = this._items.size;
    await this._loadPage();
    const first = this._list.children[before];
    if (first) first.focus();
  }

  /** After a reconnect or a new token: the loaded items' states as the server has them now (nothing missed). */
  async _refresh() {
    if (!this._loaded || !this.client || this._loading) return;
    const tab = this._tab;
    const shown = Math.min(Math.max(this._items.size, 20), 100);
    try {
      const page = await this.client.list({ status: tab === "inbox" ? undefined : tab, limit: shown });
      if (tab !== this._tab) return;
      const fresh = new Set(page.items.map((n) => n.id));
      const oldest = page.items.length ? page.items[page.items.length - 1].id : Infinity;
      for (const id of [...this._items.keys()]) if (id >= oldest && !fresh.has(id)) this._remove(id);
      for (const item of page.items) { if (this._items.has(item.id)) this._replace(item); else this._add(item); }
      if (!this._cursor) { this._cursor = page.next_cursor; this._more.hidden = !this._cursor; }
      this._updateEmpty();
    } catch (error) { this._fail(error); }
  }

  _belongs(n) {
    if (this._tab === "archived") return !!n.archived;
    if (n.archived) return false;
    return this._tab === "inbox" || !n.read || this._items.has(n.id); // a read item stays put in Unread until reload
  }

  _add(n, { fresh = false } = {}) {
    if (this._items.has(n.id)) return;
    const li = this._render(n);
    if (fresh) li.classList.add("fresh");
    this._items.set(n.id, { data: n, li });
    const after = [...this._list.children].find((other) => Number(other.dataset.notificationId) < n.id); // newest first
    this._list.insertBefore(li, after || null);
    this._updateEmpty();
  }

  /** A new version of an item: drawn again if its content changed, else only its state (what a button shows stays). */
  _replace(n) {
    const entry = this._items.get(n.id);
    if (!entry) return;
    const old = entry.data;
    if (n.updated_at === old.updated_at && n.title === old.title && n.message === old.message && n.html === old.html) {
      this._patch(n.id, n);
      return;
    }
    const li = this._render(n);
    entry.li.replaceWith(li);
    this._items.set(n.id, { data: n, li });
  }

  _patch(id, change) {
    const entry = this._items.get(id);
    if (!entry) return;
    entry.data = { ...entry.data, ...change };
    this._paintState(entry.li, entry.data);
  }

  _remove(id, counts) {
    const entry = this._items.get(id);
    if (entry) { entry.li.remove(); this._items.delete(id); }
    if (counts) this._setCounts(counts);
    this._updateEmpty();
  }

  _updateEmpty() {
    const [, , empty] = TABS.find(([name]) => name === this._tab);
    this._empty.textContent = this._strings[empty];
    this._empty.hidden = this._items.size > 0 || !!this._loading;
  }

  _renderAll() { for (const [, entry] of this._items) this._replace(entry.data); }

  _render(n) {
    const li = el("li", { class: "item", tabindex: "0", "data-notification-id": n.id, "aria-label": n.title });
    const main = el("div", { class: "main" });
    main.append(el("div", { class: "title", part: "title", text: n.title }));
    const body = el("div", { class: "body", part: "body" });
    if (n.html) body.append(sanitize(n.html)); else body.textContent = n.message;
    main.append(body);
    main.append(el("div", { class: "meta", part: "meta", text: this._when(n.created_at) }));
    if (n.actions && n.actions.length) {
      main.append(el("div", { class: "actions", part: "actions" }, ...n.actions.map((action) => this._action(n, action))));
    }
    main.append(el("div", { class: "tools", part: "tools" }));
    li.append(el("span", { class: "dot", "aria-hidden": "true" }), main);
    this._paintState(li, n);
    // opening an item (a click on it, Enter on it, or following one of its links) marks it read
    li.addEventListener("click", () => this._markRead(n.id));
    li.addEventListener("keydown", (e) => { if (e.key === "Enter" && e.target === li) this._markRead(n.id); });
    return li;
  }

  /** An item's state: unread or read, and the tools that change it (read/unread, archive/move to inbox). */
  _paintState(li, n) {
    const s = this._strings;
    li.classList.toggle("unread", !n.read);
    li.setAttribute("part", n.read ? "item" : "item unread");
    const tool = (action, label) => el("button", { type: "button", "data-action": action, text: label,
                                                   onclick: (e) => this._toolClick(e, action, n.id) });
    li.querySelector(".tools").replaceChildren(
      n.read ? tool("unread", s.markUnread) : tool("read", s.markRead),
      n.archived ? tool("unarchive", s.unarchive) : tool("archive", s.archive));
  }

  _when(iso) {
    const then = new Date(iso);
    if (Number.isNaN(then.getTime())) return "";
    const lang = this.lang || document.documentElement.lang || navigator.language;
    const seconds = Math.round((then.getTime() - Date.now()) / 1000);
    const units = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400], ["hour", 3600], ["minute", 60]];
    try {
      const format = new Intl.RelativeTimeFormat(lang, { numeric: "auto" });
      for (const [unit, size] of units) if (Math.abs(seconds) >= size) return format.format(Math.round(seconds / size), unit);
      return format.format(0, "minute");
    } catch (error) { return then.toLocaleString(); }
  }

  _action(n, action) {
    const href = safeLink(action.url), endpoint = safeLink(action.api_endpoint);
    if (href) return el("a", { href, part: "action", "data-action-id": action.id, rel: "noopener noreferrer", text: action.label });
    if (action.url || !endpoint) return el("span", { class: "inert", text: action.label }); // a link that may not be followed
    const button = el("button", { type: "button", part: "action", "data-action-id": action.id, text: action.label });
    button.addEventListener("click", async (event) => {
      event.stopPropagation();
      button.disabled = true;
      this._markRead(n.id);
      try { // the host's own API, with the host's cookies (a relative endpoint is on the host's origin)
        const response = await fetch(endpoint, { method: action.method || "POST", credentials: "same-origin" });
        button.textContent = this._fmt(response.ok ? "actionDone" : "actionFailed", { label: action.label });
      } catch (error) { button.textContent = this._fmt("actionFailed", { label: action.label }); }
    });
    return button;
  }

  _toolClick(event, what, id) {
    event.stopPropagation();
    const c = this.client;
    if (what === "read") this._markRead(id);
    else if (what === "unread") this._act(() => c.markUnread(id), (r) => this._applyUnread([id], r.unread, r.unseen));
    else if (what === "archive") this._act(() => c.archive(id), (r) => this._applyArchived(id, true, r));
    else if (what === "unarchive") this._act(() => c.unarchive(id), (r) => this._applyArchived(id, false, r));
  }

  _markRead(id) {
    const entry = this._items.get(id);
    if (!entry || entry.data.read) return;
    this._act(() => this.client.markRead(id), (r) => this._applyRead([id], false, r.unread, r.unseen));
  }

  async _act(call, apply) {
    if (!this.client) return;
    try { apply(await call()); } catch (error) { this._fail(error); }
  }

  _markShownSeen() {
    if (!this.open || !this.client || document.visibilityState === "hidden") return;
    clearTimeout(this._seenTimer);
    this._seenTimer = setTimeout(() => {
      const ids = [...this._items.values()].filter(({ data }) => !data.seen && !data.read).map(({ data }) => data.id).slice(0, 500);
      if (ids.length) this._act(() => this.client.markSeen(ids), (r) => this._applySeen(ids, false, r.unread, r.unseen));
    }, 150);
  }

  // -- what the stream (or an answer) says changed ----------------------------------------------------------------

  _onNotification(n) {
    if (this._counted.has(n.id)) return; // replayed after a reconnect: already counted and shown
    this._counted.add(n.id);
    this._setCounts({ unread: n.unread_count, unseen: n.read || n.seen ? this._counts.unseen : this._counts.unseen + 1,
                      total: this._counts.total + 1 });
    this._announcer.textContent = this._fmt("newNotification", { title: n.title });
    if (this._loaded && this._belongs(n)) {
      this._add(n, { fresh: true });
      if (this.open) this._markShownSeen();
    }
  }

  _onUpdated(n) {
    if (this._items.has(n.id)) { this._replace(n); this._items.get(n.id).li.classList.add("fresh"); }
    this._setCounts({ unread: n.unread_count });
  }

  _applyRead(ids, all, unread, unseen) {
    for (const [id, entry] of this._items) {
      if ((all || ids.includes(id)) && !entry.data.read) this._patch(id, { read: true, seen: true });
    }
    this._setCounts({ unread, unseen });
  }

  _applySeen(ids, all, unread, unseen) {
    for (const [id, entry] of this._items) if (all || ids.includes(id)) entry.data.seen = true;
    this._setCounts({ unread, unseen });
  }

  _applyUnread(ids, unread, unseen) {
    for (const id of ids) {
      const entry = this._items.get(id);
      if (!entry) continue;
      if (this._tab === "archived") this._remove(id); else this._patch(id, { read: false, archived: false });
    }
    this._setCounts({ unread, unseen });
  }

  _applyArchived(id, archived, counts) {
    const entry = this._items.get(id);
    if (entry && archived !== (this._tab === "archived")) this._remove(id);
    else if (entry) this._patch(id, { archived, read: archived ? true : entry.data.read });
    else if (this._loaded && archived === (this._tab === "archived")) this._refresh(); // it belongs here now: fetch it
    this._setCounts({ unread: counts.unread ?? counts.unread_count, unseen: counts.unseen ?? counts.unseen_count,
                      total: counts.total ?? counts.total_count });
  }

  // -- preferences ------------------------------------------------------------------------------------------------

  _showView(view) {
    this._view = view;
    const prefs = view === "preferences";
    this._inboxView.hidden = prefs;
    this._tabs.hidden = prefs;
    this._readAll.hidden = prefs;
    this._prefsView.hidden = !prefs;
    this._gear.replaceChildren(svgIcon(prefs ? BACK_ICON : GEAR_ICON));
    this._relabel();
    if (prefs) this._loadPreferences();
  }

  async _loadPreferences() {
    const s = this._strings;
    const view = this._prefsView;
    view.replaceChildren(el("p", { class: "loading", text: s.loading }));
    let options, prefs;
    try { [options, prefs] = await Promise.all([this.client.preferenceOptions(), this.client.preferences()]); } catch (error) {
      view.replaceChildren(el("p", { class: "error", text: error.message }));
      return;
    }
    // (the locale is kept as it is: PUT replaces the whole document)
    this._prefs = { channels: { ...(prefs.channels || {}) }, types: { ...(prefs.types || {}) }, type_channels: prefs.type_channels || {},
                    locale: prefs.locale ?? null };
    const note = el("p", { class: "note", role: "status", "aria-live": "polite" });
    const toggle = (map, name, label, attribute, critical) => {
      const input = el("input", { type: "checkbox", role: "switch", [attribute]: name,
                                  checked: critical || this._prefs[map][name] !== false, disabled: critical });
      input.addEventListener("change", () => this._savePreference(map, name, input, note));
      return el("label", { part: "preference" }, input, el("span", { text: label }),
                critical ? el("small", { text: s.alwaysOn }) : "");
    };
    view.replaceChildren(
      el("h3", { text: s.channels }),
      ...options.channels.map((name) => toggle("channels", name, s[`channel_${name}`] || humanize(name), "data-preference-channel", false)),
      el("h3", { text: s.types }),
      ...options.types.map((t) => toggle("types", t.type, s[`type_${t.type}`] || humanize(t.type), "data-preference-type", t.critical)),
      note,
    );
  }

  async _savePreference(map, name, input, note) {
    const next = { ...this._prefs, [map]: { ...this._prefs[map] } };
    if (input.checked) delete next[map][name]; else next[map][name] = false; // absent means on
    input.disabled = true;
    try {
      const saved = await this.client.savePreferences(next);
      this._prefs = { channels: saved.channels || {}, types: saved.types || {}, type_channels: saved.type_channels || {},
                      locale: saved.locale ?? null };
      note.textContent = this._strings.saved;
      this.dispatchEvent(new CustomEvent("notif-preferences-changed", { bubbles: true, composed: true, detail: saved }));
    } catch (error) {
      input.checked = !input.checked;
      note.textContent = this._fmt("saveFailed", { reason: error.message });
    } finally { input.disabled = false; }
  }
}

NotifInbox.strings = { ...DEFAULT_STRINGS };
NotifInbox.Client = NotifClient;

window.NotifClient = NotifClient;
window.NotifInbox = NotifInbox;
if (!customElements.get("notif-inbox")) customElements.define("notif-inbox", NotifInbox);
