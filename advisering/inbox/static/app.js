// The inbox page: plain JavaScript, no build step. The token lives in
// sessionStorage (or arrives once in the URL fragment: #token=...), is sent as a
// bearer header, and as access_token to the live stream (EventSource cannot set
// headers).
"use strict";

// The Danish labels come from the server (advisering/labels.py), injected into the page.
const LABELS = JSON.parse(document.getElementById("labels").textContent);
const capitalised = (text) => text.charAt(0).toUpperCase() + text.slice(1);
const severityLabel = (severity) => capitalised(LABELS.severities[severity] || severity);
const PAGE = 20;
const state = { token: null, offset: 0, total: 0, stream: null };
const $ = (id) => document.getElementById(id);

function api(path, options = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + state.token }, options.headers || {});
  return fetch(path, Object.assign({}, options, { headers })).then(async (reply) => {
    if (reply.status === 401) { logout("Din adgang er udløbet eller ugyldig. Log ind igen."); throw new Error("401"); }
    if (!reply.ok) { const body = await reply.json().catch(() => ({})); throw new Error(body.message || reply.statusText); }
    return reply.json();
  });
}

function formatTime(iso) {
  const d = new Date(iso);
  return d.toLocaleString("da-DK", { dateStyle: "medium", timeStyle: "short" });
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value; else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function render(n) {
  const unread = !n.read_at;
  const item = el("li", { class: `note sev-${n.severity} ${unread ? "unread" : "read"}`, "data-id": n.id });
  const title = el("header", {},
    el("span", { class: "badge", text: severityLabel(n.severity) }),
    el("strong", { text: n.title }),
    el("span", { class: "status", text: unread ? "Ulæst" : "Læst" }),
    el("time", { datetime: n.created, text: formatTime(n.created) }));
  const caseLine = el("p", { class: "case" }, "Din sag: ");
  const related = n.related_case;
  caseLine.append(related.url ? el("a", { href: related.url, text: related.id, rel: "noopener" })
                              : el("strong", { text: related.id }));
  const why = el("details", {}, el("summary", { text: "Hvorfor får jeg dette advis?" }),
    el("dl", {},
      el("dt", { text: "Regel" }), el("dd", { text: `${n.title} (${n.rule})` }),
      el("dt", { text: "Hjemmel" }), el("dd", { text: n.legal_basis }),
      el("dt", { text: "Udløst af" }),
      el("dd", { text: `${LABELS.events[n.trigger.type] || n.trigger.type} fra ${LABELS.departments[n.trigger.department] || n.trigger.department || n.trigger.source} (${formatTime(n.trigger.time)})` })));
  const actions = el("div", { class: "actions" });
  if (unread) {
    const read = el("button", { type: "button", class: "mark-read", text: "Markér som læst" });
    read.addEventListener("click", () => markRead(n.id));
    actions.append(read);
  }
  for (const [useful, label] of [[true, "Nyttig"], [false, "Ikke nyttig"]]) {
    const verdict = useful ? "useful" : "not_useful";
    const button = el("button", { type: "button", class: `feedback-${verdict}`, text: label,
                                  "aria-pressed": String(n.feedback === verdict) });
    button.addEventListener("click", () => feedback(n.id, useful));
    actions.append(button);
  }
  item.append(title, el("p", { class: "message", text: n.message }), caseLine, why, actions);
  return item;
}

async function load() {
  const params = new URLSearchParams({ limit: PAGE, offset: state.offset });
  if ($("only-unread").checked) params.set("unread", "true");
  if ($("severity").value) params.set("severity", $("severity").value);
  const page = await api("/api/v1/notifications?" + params);
  state.total = page.total;
  $("list").replaceChildren(...page.items.map(render));
  $("empty").hidden = page.items.length > 0;
  $("unread").textContent = page.unread ? String(page.unread) : "";
  $("unread").setAttribute("aria-label", `${page.unread} ulæste`);
  document.title = page.unread ? `(${page.unread}) Advis – indbakke` : "Advis – indbakke";
  const pages = Math.max(1, Math.ceil(page.total / PAGE));
  $("page").textContent = `Side ${Math.floor(state.offset / PAGE) + 1} af ${pages}`;
  $("prev").disabled = state.offset === 0;
  $("next").disabled = state.offset + PAGE >= page.total;
}

async function markRead(id) { await api(`/api/v1/notifications/${id}/read`, { method: "POST" }); await load(); }

async function feedback(id, useful) {
  await api(`/api/v1/notifications/${id}/feedback`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ useful }) });
  $("live").textContent = "Tak for din tilbagemelding.";
  await load();
}

function listen() {
  if (state.stream) state.stream.close();
  state.stream = new EventSource("/api/v1/stream?access_token=" + encodeURIComponent(state.token));
  // On every (re)connection, reload: whatever arrived while the stream was not
  // yet (or no longer) open is in the list then.
  state.stream.addEventListener("open", () => { document.body.dataset.live = "on"; load(); });
  state.stream.addEventListener("error", () => { document.body.dataset.live = "off"; });
  state.stream.addEventListener("notification", async (event) => {
    const n = JSON.parse(event.data);
    $("live").textContent = `Nyt advis: ${n.title}`;
    await load();
  });
  // The server ends a stream with a last event saying why (advisering/inbox/live.py).
  // reload: this page fell behind; the list is read again on the new stream's open.
  state.stream.addEventListener("reload", () => listen());
  state.stream.addEventListener("expired", () => logout("Din adgang er udløbet. Log ind igen."));
  state.stream.addEventListener("revoked", () => logout("Din adgang er trukket tilbage. Log ind igen."));
  // replaced: the same login opened live updates elsewhere too; stay, without them.
  state.stream.addEventListener("replaced", () => {
    state.stream.close(); document.body.dataset.live = "off";
    $("live").textContent = "Levende opdatering er slået fra i dette vindue. Genindlæs siden for at slå den til.";
  });
}

async function login(token) {
  state.token = token;
  try {
    const me = await api("/api/v1/me");
    sessionStorage.setItem("advisering-token", token);
    $("who").textContent = `Logget ind som ${me.caseworker} (${me.department}` + (me.unit ? `, enhed ${me.unit})` : ")");
    $("who").hidden = false; $("login").hidden = true; $("indbakke").hidden = false;
    await load();
    listen();
    $("inbox-title").focus();
  } catch (error) {
    if (error.message !== "401") $("login-error").textContent = error.message;
  }
}

function logout(message) {
  sessionStorage.removeItem("advisering-token");
  if (state.stream) state.stream.close();
  state.token = null;
  $("indbakke").hidden = true; $("who").hidden = true; $("login").hidden = false;
  $("login-error").textContent = message || "";
}

document.addEventListener("DOMContentLoaded", () => {
  $("inbox-title").tabIndex = -1;
  for (const [value, label] of Object.entries(LABELS.severities)) {
    $("severity").append(el("option", { value, text: capitalised(label) }));
  }
  $("login-form").addEventListener("submit", (event) => { event.preventDefault(); login($("token").value.trim()); });
  $("filters").addEventListener("change", () => { state.offset = 0; load(); });
  $("read-all").addEventListener("click", async () => { await api("/api/v1/notifications/read-all", { method: "POST" }); await load(); });
  $("logout").addEventListener("click", () => logout());
  $("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); load(); });
  $("next").addEventListener("click", () => { state.offset += PAGE; load(); });
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("token")) { history.replaceState(null, "", location.pathname); login(fragment.get("token")); return; }
  const saved = sessionStorage.getItem("advisering-token");
  if (saved) login(saved); else logout();
});
