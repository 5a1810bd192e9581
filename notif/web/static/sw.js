// notif's service worker: shows Web Push notifications and handles their action buttons.
// It follows only links safeLink allows (links.js), whatever the push carried.
"use strict";
importScripts("/static/links.js");

self.addEventListener("push", (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch (error) { data = { title: "Notification", body: event.data.text() }; }
  event.waitUntil(self.registration.showNotification(data.title || "Notification", {
    body: data.body || "",
    tag: data.tag,
    data: data.data || {},
    actions: data.actions || [],
  }));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const data = event.notification.data || {};
  const action = (data.actions || []).find((a) => a.id === event.action);
  if (action && action.api_endpoint) {
    const endpoint = safeLink(action.api_endpoint);
    if (endpoint) event.waitUntil(fetch(endpoint, { method: action.method || "POST", credentials: "include" }));
    return;
  }
  const url = (action && safeLink(action.url)) || safeLink(data.url) || "/";
  event.waitUntil(self.clients.matchAll({ type: "window" }).then((windows) => {
    for (const w of windows) if (w.url === url && "focus" in w) return w.focus();
    return self.clients.openWindow(url);
  }));
});
