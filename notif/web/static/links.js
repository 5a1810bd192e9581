// Which links the inbox page and the service worker may follow: the rule of notif/inputs.py::link_problem,
// checked again where a link is rendered, for rows stored before that rule (or by anything that skipped it).
// Allowed: https:, http: (with a host), mailto: and relative paths. Refused: every other scheme (javascript:,
// data:, vbscript:…), `//host` (another site without saying so), backslashes, whitespace and control characters
// anywhere (browsers strip or skip them, so "java\tscript:" would be javascript:), and anything not a string.
"use strict";

const SAFE_SCHEMES = ["https", "http", "mailto"];
const MAX_LINK = 2000;
// attributes whose value a browser follows, loads or submits to (notif/inputs.py::LINK_ATTRIBUTES)
const LINK_ATTRIBUTES = ["href", "src", "action", "formaction", "xlink:href", "data", "poster", "background"];

/** `url` if it may become a link, else null. */
function safeLink(url) {
  if (typeof url !== "string" || url === "" || url.length > MAX_LINK) return null;
  if (/[\u0000-\u0020\u007f-\u009f\s\\]/.test(url)) return null;
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url);
  if (scheme) {
    const name = scheme[1].toLowerCase();
    if (!SAFE_SCHEMES.includes(name)) return null;
    if (name !== "mailto" && !url.slice(scheme[0].length).startsWith("//")) return null;
    return url;
  }
  return url.startsWith("//") ? null : url;
}

/** Removes every link attribute whose value safeLink refuses from the elements under `root` (a fragment). */
function dropUnsafeLinks(root) {
  for (const element of root.querySelectorAll("*")) {
    for (const attribute of [...element.attributes]) {
      if (LINK_ATTRIBUTES.includes(attribute.name.toLowerCase()) && attribute.value && !safeLink(attribute.value)) {
        element.removeAttribute(attribute.name);
      }
    }
  }
  return root;
}
