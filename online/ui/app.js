// recolake's playground and dashboard: plain JS, no build step, no third-party code.
// Tokens are typed by the user and kept in sessionStorage (never in this file or the page).
"use strict";

const store = window.sessionStorage;
const TOKENS = { read: "recolake.readToken", write: "recolake.writeToken" };
const $ = (id) => document.getElementById(id);
let shown = null; // the last recommendations response shown in the playground

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "onclick") node.addEventListener("click", v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : String(c ?? ""));
  return node;
}

function status(text, ok = false) {
  $("status").textContent = text;
  $("status").className = ok ? "ok" : "";
}

// The write token goes only with the requests that post (POST /v1/events): reads send the read
// token or nothing, so a page that only reads never holds a token that can change data.
function tokenFor(method) {
  return store.getItem(method === "GET" ? TOKENS.read : TOKENS.write) || "";
}

async function api(path, { method = "GET", body } = {}) {
  const token = tokenFor(method);
  if (method !== "GET" && !token) {
    throw new Error("posting needs the write token: type it above (reads work without it)");
  }
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { method, headers, body: body && JSON.stringify(body) });
  const data = resp.headers.get("content-type")?.includes("json") ? await resp.json() : null;
  if (!resp.ok) {
    if (method === "GET" && resp.status === 401 && !token) {
      throw new Error("reads need the read token: type it above (the write token is only used to post)");
    }
    const detail = typeof data?.detail === "string" ? data.detail : JSON.stringify(data?.detail);
    throw new Error(`${method} ${path.split("?")[0]}: ${resp.status} ${detail || ""}`);
  }
  return data;
}

async function catalogOf(ids) {
  const unique = [...new Set(ids)].slice(0, 200);
  if (!unique.length) return {};
  return (await api(`/v1/catalog?ids=${encodeURIComponent(unique.join(","))}`)).items;
}

// ---------------------------------------------------------------- playground

function who() {
  return { user: $("user-id").value.trim(), session: $("session-id").value.trim() };
}

function recommendationsPath({ user, session }) {
  const q = new URLSearchParams({ k: "10" });
  if (session) q.set("session_id", session);
  return user ? `/v1/recommendations/${encodeURIComponent(user)}?${q}` : `/v1/recommendations?${q}`;
}

function price(info) {
  return info?.price != null ? info.price.toFixed(2) : "price n/a";
}

function card(item, info, actions) {
  const title = info?.title || item.item_id;
  return el("div", { class: "card", "data-item": item.item_id },
    el("h4", { class: "title", onclick: guard(() => actions.open(item)) }, title),
    el("div", { class: "meta" }, `${info?.category ?? "?"} · `,
      el("span", { class: "price" }, price(info)), ` · ${item.item_id}`),
    item.source ? el("div", { class: "meta" }, `source ${item.source} · score ${item.score.toFixed(3)}`) : "",
    item.reason ? el("div", { class: "reason" }, item.reason) : "",
    ...(actions.buttons || []).map(([label, fn]) => el("button", { type: "button", onclick: guard(() => fn(item)) }, label)),
  );
}

async function showRecommendations() {
  const body = await api(recommendationsPath(who()));
  const info = await catalogOf([...body.items.map((i) => i.item_id), ...body.recent]);
  shown = body;
  $("summary").textContent = `variant ${body.variant}` +
    (body.experiment ? ` of ${body.experiment}` : "") +
    ` · model ${body.model_version ?? "n/a"} · publication ${body.publication ?? "n/a"}` +
    ` · weights ${body.weights_source}` + (body.short ? ` · short: ${body.short.reason}` : "");
  const actions = {
    open: (item) => post("view", item),
    buttons: [["View", (i) => post("view", i)], ["Cart", (i) => post("add_to_cart", i)],
      ["Buy", (i) => post("purchase", i)], ["Item page", (i) => openItem(i.item_id)]],
  };
  $("cards").replaceChildren(...body.items.map((i) => card(i, info[i.item_id], actions)));
  if (!body.items.length) $("cards").append(el("p", { class: "empty" }, "no items"));
  $("recent").replaceChildren(...body.recent.map((id) =>
    el("li", { "data-item": id }, info[id]?.title ? `${info[id].title} (${id})` : id)));
  return body;
}

// "Pick a known user": the live publication's example users (GET /v1/users, the most active
// users' ids the publish job lists) as suggestions of the user id box, by prefix.
let suggested = 0;
async function suggestUsers() {
  const asked = ++suggested;
  const q = new URLSearchParams({ prefix: $("user-id").value.trim(), limit: "20" });
  const body = await api(`/v1/users?${q}`);
  if (asked !== suggested) return; // a newer keystroke asked since
  $("known-users").replaceChildren(...body.users.map((id) => el("option", { value: id })));
  $("users-hint").textContent = body.examples
    ? `${body.users.length} of ${body.examples} example users match`
    : "this publication lists no example users";
}

function signature(body) {
  return JSON.stringify([body.items.map((i) => i.item_id), body.recent]);
}

async function post(eventType, item) {
  const { user, session } = who();
  if (!user && !session) {
    $("session-id").value = newSessionId();
  }
  const w = who();
  const event = {
    item_id: item.item_id, event_type: eventType, timestamp: new Date().toISOString(),
    ...(w.user ? { user_id: w.user } : {}), ...(w.session ? { session_id: w.session } : {}),
    ...(shown?.recommendation_id ? { recommendation_id: shown.recommendation_id } : {}),
  };
  const before = shown ? signature(shown) : "";
  const answer = await api("/v1/events", { method: "POST", body: event });
  status(`posted ${eventType} of ${item.item_id} (${answer.event_ids[0]}); waiting for the stream…`, true);
  const started = performance.now();
  while (performance.now() - started < 15000) {
    await new Promise((r) => setTimeout(r, 250));
    const body = await showRecommendations();
    if (signature(body) !== before) {
      status(`${eventType} of ${item.item_id}: list changed after ${Math.round(performance.now() - started)} ms`, true);
      return;
    }
  }
  status(`${eventType} of ${item.item_id} posted; the list did not change within 15 s (is the streaming job running?)`);
}

function newSessionId() {
  return "visitor-" + crypto.getRandomValues(new Uint32Array(2)).join("");
}

// ---------------------------------------------------------------- item page

async function openItem(itemId) {
  $("item-id").value = itemId;
  location.hash = "#item";
  await showItem();
}

async function showItem() {
  const id = $("item-id").value.trim();
  if (!id) return;
  const path = (kind) => `/v1/items/${encodeURIComponent(id)}/${kind}?k=10`;
  const [similar, together] = await Promise.all([api(path("similar")), api(path("bought-together"))]);
  const info = await catalogOf([id, ...similar.items.map((i) => i.item_id), ...together.items.map((i) => i.item_id)]);
  $("item-title").textContent = info[id]?.title ? `${info[id].title} (${info[id].category ?? "?"})` : id;
  $("item-price").textContent = info[id] ? price(info[id]) : "";
  const actions = { open: (i) => openItem(i.item_id) };
  for (const [target, body] of [["similar", similar], ["bought-together", together]]) {
    $(target).replaceChildren(...body.items.map((i) => card(i, info[i.item_id], actions)));
    if (!body.items.length) $(target).append(el("p", { class: "empty" }, "none"));
  }
}

// ---------------------------------------------------------------- dashboard

function fmt(v) {
  if (v == null) return "–";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(4);
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function table(id, header, rows) {
  const node = $(id);
  if (!rows.length) {
    node.replaceChildren(el("tr", {}, el("td", { class: "empty" }, "nothing yet")));
    return;
  }
  node.replaceChildren(
    el("tr", {}, ...header.map((h) => el("th", {}, h))),
    ...rows.map((r) => el("tr", {}, ...r.map((v) => el("td", { class: typeof v === "number" ? "num" : "" }, fmt(v))))),
  );
}

function interval(r, rate) {
  return r[rate] == null ? null : `${fmt(r[rate])} [${fmt(r[rate + "_low"])}, ${fmt(r[rate + "_high"])}]`;
}

async function showDashboard() {
  const d = await api("/v1/dashboard");
  const p = d.publication;
  table("publication-table", ["field", "value"], p ? [
    ["version", p.version], ["model version", p.model_version], ["ds", p.ds],
    ["published at", p.published_at], ["users", p.users], ["items", p.items],
    ["weights source", p.weights_source],
    ...Object.entries(p.weights).map(([k, v]) => [`weight ${k}`, v]),
  ] : []);
  const n = d.nightly;
  table("steps-table", ["step", "seconds"], n ? [...n.steps.map((s) => [s.step, s.seconds]), ["total", n.total_seconds]] : []);
  const e = d.evaluation;
  const metricNames = e ? [...new Set(Object.values(e.models).flatMap((m) => Object.keys(m)))].sort() : [];
  table("metrics-table", ["model", ...metricNames],
    e ? Object.entries(e.models).map(([model, m]) => [model, ...metricNames.map((k) => m[k] ?? null)]) : []);
  const x = d.experiments?.results || [];
  table("experiments-table", ["experiment", "variant", "impressions", "CTR", "conversion", "revenue/impression"],
    x.map((r) => [r.experiment, r.variant + (r.is_control ? " (control)" : ""), r.impressions,
      interval(r, "ctr"), interval(r, "conversion"), interval(r, "revenue_per_impression")]));
  table("streaming-table", ["query", "batch", "rows", "batch seconds", "lag s", "last batch ago s"],
    d.streaming.map((s) => [s.query, s.batch_id, s.rows, s.duration_seconds, s.lag_seconds, s.age_seconds]));
  const m = d.redis_memory;
  table("memory-table", ["used", "peak", "maxmemory", "nodes"],
    [[bytes(m.used_bytes), bytes(m.peak_bytes), m.maxmemory_bytes ? bytes(m.maxmemory_bytes) : "no limit", m.nodes]]);
  const plots = [];
  for (const path of d.report_images) {
    const token = tokenFor("GET");
    const resp = await fetch(`/ui/reports/${path}`, token ? { headers: { Authorization: `Bearer ${token}` } } : {});
    if (resp.ok) plots.push(el("img", { src: URL.createObjectURL(await resp.blob()), alt: path, title: path }));
  }
  $("plots").replaceChildren(...(plots.length ? plots : [el("p", { class: "empty" }, "no plots")]));
  status(`dashboard read at ${new Date().toLocaleTimeString()}`, true);
}

// ---------------------------------------------------------------- wiring

function guard(fn) {
  return async (ev) => {
    ev?.preventDefault?.();
    try { await fn(); } catch (err) { status(err.message); }
  };
}

function showTab() {
  const tab = (location.hash || "#playground").slice(1);
  for (const s of document.querySelectorAll(".tab")) s.classList.toggle("active", s.id === tab);
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.tab === tab);
  if (tab === "dashboard") guard(showDashboard)();
}

document.addEventListener("DOMContentLoaded", () => {
  $("read-token").value = store.getItem(TOKENS.read) || "";
  $("write-token").value = store.getItem(TOKENS.write) || "";
  $("tokens").addEventListener("submit", (ev) => {
    ev.preventDefault();
    store.setItem(TOKENS.read, $("read-token").value.trim());
    store.setItem(TOKENS.write, $("write-token").value.trim());
    status("tokens kept for this tab", true);
  });
  $("who").addEventListener("submit", guard(showRecommendations));
  let typing = null;
  const suggest = () => { clearTimeout(typing); typing = setTimeout(guard(suggestUsers), 150); };
  $("user-id").addEventListener("input", suggest);
  $("user-id").addEventListener("focus", suggest);
  $("fresh").addEventListener("click", guard(async () => {
    $("user-id").value = "";
    $("session-id").value = newSessionId();
    await showRecommendations();
  }));
  $("item-form").addEventListener("submit", guard(showItem));
  $("refresh").addEventListener("click", guard(showDashboard));
  window.addEventListener("hashchange", showTab);
  showTab();
});
