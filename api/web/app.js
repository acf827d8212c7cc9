// picstats live dashboard: plain ES2020, no framework, no build step.
//
// The tiles come from GET /api/statistics, the values from the websocket
// /api/ws: a snapshot of every statistic, then updates with only the ones that
// changed ({"v":1,"type":"snapshot"|"update","stats":{name: result}}). Each
// result is drawn by a renderer chosen by the shape of the JSON, never by the
// statistic's name, so a new statistic shows up without changes here:
//
//   {"buckets": [...]}                         bar chart (by from_grams)
//   {"per_minute": [...]}                      registrations-per-minute chart
//   {"<list>": [{"picture_id": ...}, ...]}     ranked lists with thumbnails
//   {"pictures": {"<id>": {...}, ...}}         table of the first 20 by registrations
//   anything else                              key/value list, nested objects nested
//
// Only #total (count) and #average (average_weight) are read by name.
"use strict";

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10000;
const TABLE_ROWS = 20;
const SVG_NS = "http://www.w3.org/2000/svg";

// ---------------------------------------------------------------------------
// Shapes and formatting: pure functions (exported for node, see the end).

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const isNumber = (v) => typeof v === "number" && Number.isFinite(v);

// rankedLists returns the [key, list] pairs of a result whose lists hold
// objects with a picture_id, or [] if any list holds something else.
function rankedLists(result) {
  const lists = Object.entries(result).filter(([, v]) => Array.isArray(v));
  const ranked = lists.filter(([, v]) => v.length > 0 && v.every((x) => isObject(x) && "picture_id" in x));
  const other = lists.filter(([, v]) => v.length > 0 && !ranked.some(([, r]) => r === v));
  return ranked.length > 0 && other.length === 0 ? lists : [];
}

// shapeOf names the renderer for a result.
function shapeOf(result) {
  if (result === undefined || result === null) return "empty";
  if (!isObject(result)) return "fields";
  if (Array.isArray(result.buckets)) return "buckets";
  if (Array.isArray(result.per_minute)) return "per_minute";
  if (rankedLists(result).length > 0) return "ranked";
  if (isObject(result.pictures)) return "pictures";
  const values = Object.values(result);
  if (values.length === 0 || values.every((v) => v === null)) return "empty";
  return "fields";
}

const numberFormats = {
  int: new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 }),
  one: new Intl.NumberFormat(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 }),
  two: new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 }),
  small: new Intl.NumberFormat(undefined, { maximumSignificantDigits: 3 }),
};

// formatNumber: integers grouped, others with a precision that suits them.
function formatNumber(n) {
  if (!isNumber(n)) return "–";
  if (Number.isInteger(n)) return numberFormats.int.format(n);
  const a = Math.abs(n);
  if (a >= 100) return numberFormats.one.format(n);
  if (a >= 1) return numberFormats.two.format(n);
  return numberFormats.small.format(n);
}

// formatGrams rounds a weight to 0.1 g.
function formatGrams(n) {
  if (!isNumber(n)) return "–";
  return Number.isInteger(n) ? numberFormats.int.format(n) : numberFormats.one.format(Math.round(n * 10) / 10);
}

// label turns a field name into words; the unit goes with the value.
function label(key) {
  return String(key).replace(/_grams$/, "").replace(/_/g, " ");
}

const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?$/;

// formatValue renders a scalar field as text, by its key's unit and its type.
function formatValue(key, v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (isNumber(v)) return /_grams$/.test(key) ? formatGrams(v) + " g" : formatNumber(v);
  if (typeof v === "string" && ISO_TIME.test(v)) {
    const d = new Date(v);
    if (!Number.isNaN(d.getTime())) return d.toLocaleString();
  }
  return String(v);
}

// bucketLabel is a histogram bucket's lower edge; the open last one says so.
function bucketLabel(b) {
  const from = isNumber(b.from_grams) ? formatNumber(b.from_grams) : "?";
  return b.to_grams === null || b.to_grams === undefined ? "≥" + from : from;
}

function bucketRange(b) {
  const from = isNumber(b.from_grams) ? formatNumber(b.from_grams) : "?";
  if (b.to_grams === null || b.to_grams === undefined) return `${from} g or more`;
  return `${from}–${formatNumber(b.to_grams)} g`;
}

// firstByRegistrations sorts a {"id": {...}} map by registrations (then id)
// and keeps the first n.
function firstByRegistrations(map, n) {
  const regs = (v) => (isObject(v) && isNumber(v.registrations) ? v.registrations : -Infinity);
  return Object.entries(map)
    .sort(([a, x], [b, y]) => regs(y) - regs(x) || (a < b ? -1 : a > b ? 1 : 0))
    .slice(0, n);
}

// ---------------------------------------------------------------------------
// DOM helpers.

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c !== undefined && c !== null && c !== false) e.append(c);
  }
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

// thumb is the <img class="thumb"> of a picture. Lazy, so the fresh copies
// that renders build, and morph then drops, never fetch anything.
function thumb(id) {
  const img = el("img", {
    class: "thumb",
    loading: "lazy",
    decoding: "async",
    width: 48,
    height: 48,
    alt: id,
    src: "/images/" + encodeURIComponent(id) + ".jpg",
  });
  img.addEventListener("error", () => img.classList.add("broken"));
  return img;
}

// morphChildren makes the live element's children look like those of a
// freshly rendered one, touching only what differs: unchanged nodes stay in
// place, so thumbnails are not reloaded, hover and text selection survive,
// and a live update costs a few text changes.
function morphChildren(live, fresh) {
  const want = Array.from(fresh.childNodes);
  want.forEach((y, i) => {
    const x = live.childNodes[i];
    if (!x) {
      live.append(y);
    } else if (x.nodeType !== y.nodeType || x.nodeName !== y.nodeName || x.namespaceURI !== y.namespaceURI) {
      live.replaceChild(y, x);
    } else if (x.nodeType === Node.TEXT_NODE) {
      if (x.data !== y.data) x.data = y.data;
    } else if (x.nodeType === Node.ELEMENT_NODE) {
      morphElement(x, y);
    } else {
      live.replaceChild(y, x);
    }
  });
  while (live.childNodes.length > want.length) live.lastChild.remove();
}

function morphElement(x, y) {
  if (x.nodeName === "IMG" && x.getAttribute("src") === y.getAttribute("src")) return; // the same picture: keep it (and its state)
  for (const a of Array.from(x.attributes)) {
    if (a.name !== "style" && !y.hasAttribute(a.name)) x.removeAttribute(a.name);
  }
  for (const a of Array.from(y.attributes)) {
    if (a.name !== "style" && x.getAttribute(a.name) !== a.value) x.setAttribute(a.name, a.value);
  }
  // Styles through the CSSOM: the page's CSP allows no style attributes.
  for (const prop of Array.from(x.style)) {
    if (!y.style.getPropertyValue(prop)) x.style.removeProperty(prop);
  }
  for (const prop of Array.from(y.style)) {
    const v = y.style.getPropertyValue(prop);
    if (x.style.getPropertyValue(prop) !== v) x.style.setProperty(prop, v);
  }
  if (x.nodeName === "IMG" && x.classList.contains("broken")) x.classList.remove("broken");
  morphChildren(x, y);
}

// ---------------------------------------------------------------------------
// Renderers: each returns the nodes of a tile's body for a result of its shape.

// kvList renders fields as <dl class="kv">; nested objects become nested lists.
function kvList(obj, skip) {
  const dl = el("dl", { class: "kv" });
  for (const [k, v] of Object.entries(obj)) {
    if (skip && skip.has(k)) continue;
    dl.append(el("dt", null, label(k)), el("dd", null, fieldValue(k, v)));
  }
  return dl;
}

function fieldValue(key, v) {
  if (isObject(v)) {
    return Object.keys(v).length === 0 ? el("span", { class: "muted" }, "none") : kvList(v);
  }
  if (Array.isArray(v)) {
    if (v.length === 0) return el("span", { class: "muted" }, "none");
    if (v.every((x) => !isObject(x) && !Array.isArray(x))) return v.map((x) => formatValue(key, x)).join(", ");
    const ol = el("ol", { class: "nested" });
    for (const x of v.slice(0, TABLE_ROWS)) ol.append(el("li", null, fieldValue(key, x)));
    return ol;
  }
  if (key === "picture_id" && typeof v === "string" && v !== "") {
    return el("span", { class: "pic" }, thumb(v), el("span", { class: "pid" }, v));
  }
  const text = formatValue(key, v);
  return isNumber(v) ? el("span", { class: "num" }, text) : text;
}

function renderFields(r) {
  return [isObject(r) ? kvList(r) : el("p", { class: "scalar" }, formatValue("", r))];
}

function renderBuckets(r) {
  const buckets = r.buckets.filter(isObject);
  const counts = buckets.map((b) => (isNumber(b.registrations) ? b.registrations : 0));
  const max = Math.max(1, ...counts);
  const total = counts.reduce((a, b) => a + b, 0);
  const stride = Math.max(1, Math.ceil(buckets.length / 6));
  const bars = el("div", { class: "bars", role: "img", "aria-label": `${formatNumber(total)} registrations in ${buckets.length} buckets` });
  const labels = el("div", { class: "bar-labels", "aria-hidden": "true" });
  buckets.forEach((b, i) => {
    const bar = el("div", { class: "bar" });
    bar.style.height = (counts[i] / max) * 100 + "%";
    if (counts[i] > 0) bar.style.minHeight = "1px";
    bars.append(el("div", { class: "bar-col", title: `${bucketRange(b)}: ${formatNumber(counts[i])}` }, bar));
    labels.append(el("span", null, i % stride === 0 || i === buckets.length - 1 ? bucketLabel(b) : ""));
  });
  const peak = counts.indexOf(Math.max(...counts));
  return [
    bars,
    labels,
    el("p", { class: "chart-note" }, `grams · peak ${buckets[peak] ? bucketRange(buckets[peak]) : "–"} (${formatNumber(counts[peak])}) · max bar ${formatNumber(max)}`),
    extras(r, ["buckets"]),
  ];
}

function renderPerMinute(r) {
  const points = r.per_minute.filter(isObject);
  const counts = points.map((p) => (isNumber(p.registrations) ? p.registrations : 0));
  const max = Math.max(1, ...counts);
  const W = 600;
  const H = 150;
  const step = W / Math.max(1, points.length);
  const chart = svg("svg", { class: "minutes", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" });
  chart.setAttribute("aria-label", `registrations per minute over ${points.length} minutes, at most ${formatNumber(max)}`);
  for (const y of [0.25, 0.5, 0.75]) chart.append(svg("line", { class: "grid", x1: 0, x2: W, y1: H * y, y2: H * y }));
  points.forEach((p, i) => {
    const h = (counts[i] / max) * (H - 4);
    const rect = svg("rect", { x: i * step + step * 0.1, width: step * 0.8, y: H - h, height: h, class: i === points.length - 1 ? "current" : "" });
    const t = svg("title");
    t.textContent = `${minuteLabel(p.minute)}: ${formatNumber(counts[i])}`;
    rect.append(t);
    chart.append(rect);
  });
  const last = counts.length ? counts[counts.length - 1] : 0;
  const prev = counts.length > 1 ? counts[counts.length - 2] : null;
  const sum = counts.reduce((a, b) => a + b, 0);
  return [
    el("div", { class: "minutes-head" },
      el("span", null, el("b", { class: "num" }, formatNumber(last)), " this minute so far"),
      prev !== null ? el("span", null, el("b", { class: "num" }, formatNumber(prev)), " the minute before") : null,
      el("span", null, el("b", { class: "num" }, formatNumber(sum)), ` in ${points.length} min`)),
    el("div", { class: "chart-wrap" }, el("span", { class: "ymax" }, formatNumber(max)), chart),
    el("div", { class: "axis" },
      el("span", null, points.length ? minuteLabel(points[0].minute) : ""),
      el("span", null, points.length ? minuteLabel(points[points.length - 1].minute) : "")),
    extras(r, ["per_minute"]),
  ];
}

function minuteLabel(v) {
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? String(v) : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function renderRanked(r) {
  const lists = rankedLists(r);
  const wrap = el("div", { class: "ranked" });
  for (const [key, items] of lists) {
    const ol = el("ol", { class: "pics" });
    for (const item of items) {
      const id = String(item.picture_id);
      const nums = el("span", { class: "pic-nums" });
      for (const [k, v] of Object.entries(item)) {
        if (k === "picture_id") continue;
        nums.append(el("span", { class: "pic-num" }, el("b", { class: "num" }, formatValue(k, v)), " ", label(k)));
      }
      ol.append(el("li", { "data-picture": id }, thumb(id), el("span", { class: "pic-text" }, el("span", { class: "pid" }, id), nums)));
    }
    if (items.length === 0) ol.append(el("li", { class: "muted" }, "none yet"));
    wrap.append(el("div", { class: "ranked-list" }, el("h3", null, label(key)), ol));
  }
  return [wrap, extras(r, lists.map(([k]) => k))];
}

function renderPictures(r) {
  const entries = Object.entries(r.pictures);
  const rows = firstByRegistrations(r.pictures, TABLE_ROWS);
  const cols = [];
  for (const [, v] of rows) {
    if (isObject(v)) for (const k of Object.keys(v)) if (!cols.includes(k)) cols.push(k);
  }
  const head = el("tr", null, el("th", { scope: "col" }, "picture"), ...cols.map((c) => el("th", { scope: "col", class: "n" }, label(c) + (/_grams$/.test(c) ? " (g)" : ""))));
  // A column with any fraction shows one decimal in every row, so it lines up.
  const decimals = new Set(cols.filter((c) => rows.some(([, v]) => isObject(v) && isNumber(v[c]) && !Number.isInteger(v[c]))));
  const cell = (c, x) => {
    if (!isNumber(x)) return formatValue(c, x);
    return decimals.has(c) ? numberFormats.one.format(Math.round(x * 10) / 10) : formatNumber(x);
  };
  const body = el("tbody");
  for (const [id, v] of rows) {
    body.append(el("tr", null,
      el("td", null, el("span", { class: "pic" }, thumb(id), el("span", { class: "pid" }, id))),
      ...cols.map((c) => el("td", { class: "n num" }, isObject(v) ? cell(c, v[c]) : "–"))));
  }
  const caption = `first ${Math.min(TABLE_ROWS, entries.length)} of ${formatNumber(entries.length)} by registrations`;
  return [
    el("div", { class: "table-wrap" }, el("table", { class: "pictures" }, el("caption", null, caption), el("thead", null, head), body)),
    extras(r, ["pictures"]),
  ];
}

// extras lists the fields a chart did not draw, if any.
function extras(r, drawn) {
  const skip = new Set(drawn);
  return Object.keys(r).some((k) => !skip.has(k)) ? kvList(r, skip) : null;
}

const renderers = {
  buckets: renderBuckets,
  per_minute: renderPerMinute,
  ranked: renderRanked,
  pictures: renderPictures,
  fields: renderFields,
};
const wideShapes = new Set(["per_minute", "ranked", "pictures"]);

// ---------------------------------------------------------------------------
// The page.

const state = {
  values: new Map(), // statistic name -> latest result
  tiles: new Map(), // statistic name -> {section, desc, body}
  ws: null,
  backoff: BACKOFF_MIN_MS,
  retry: 0,
  listTimer: 0,
};

function ensureTile(name) {
  let t = state.tiles.get(name);
  if (t) return t;
  const desc = el("p", { class: "desc" });
  const body = el("div", { class: "tile-body" });
  const section = el("section", { class: "tile", "data-stat": name, "aria-label": label(name) },
    el("header", { class: "tile-head" }, el("h2", null, label(name)), desc), body);
  t = { section, desc, body };
  state.tiles.set(name, t);
  document.getElementById("tiles").append(section);
  renderStat(name);
  return t;
}

function renderStat(name) {
  const t = state.tiles.get(name);
  if (!t) return;
  const value = state.values.get(name);
  const shape = shapeOf(value);
  t.section.dataset.shape = shape;
  t.section.classList.toggle("wide", wideShapes.has(shape));
  let nodes;
  if (shape === "empty") {
    nodes = [el("p", { class: "nodata" }, "no data yet")];
  } else {
    try {
      nodes = renderers[shape](value).filter(Boolean);
    } catch (e) {
      // A result this page does not understand must not stop the others.
      console.error(`rendering ${name}`, e);
      nodes = [el("pre", { class: "raw" }, JSON.stringify(value, null, 1))];
    }
  }
  morphChildren(t.body, el("div", null, ...nodes));
}

function renderTotals() {
  const count = state.values.get("count");
  const avg = state.values.get("average_weight");
  document.getElementById("total").textContent = isObject(count) && isNumber(count.registrations) ? formatNumber(count.registrations) : "–";
  document.getElementById("average").textContent = isObject(avg) && isNumber(avg.average_weight_grams) ? formatGrams(avg.average_weight_grams) : "–";
}

function setConn(s, text) {
  const c = document.getElementById("conn");
  c.dataset.state = s;
  c.textContent = text;
}

function notice(text) {
  const n = document.getElementById("notice");
  n.textContent = text || "";
  n.hidden = !text;
}

// loadStatistics lays out one tile per statistic the API serves, in its order,
// retrying until it gets the list.
async function loadStatistics() {
  clearTimeout(state.listTimer);
  try {
    const resp = await fetch("/api/statistics", { cache: "no-store" });
    if (!resp.ok) throw new Error(`GET /api/statistics: ${resp.status}`);
    const body = await resp.json();
    const list = Array.isArray(body.statistics) ? body.statistics.filter((s) => isObject(s) && typeof s.name === "string") : [];
    const listed = new Set(list.map((s) => s.name));
    for (const [name, t] of state.tiles) {
      if (!listed.has(name)) {
        t.section.remove();
        state.tiles.delete(name);
      }
    }
    const container = document.getElementById("tiles");
    for (const s of list) {
      const t = ensureTile(s.name);
      t.desc.textContent = s.description || "";
      container.append(t.section); // in the API's order
    }
  } catch (e) {
    state.listTimer = setTimeout(loadStatistics, 3000);
  }
}

function handleMessage(data) {
  let msg;
  try {
    msg = JSON.parse(data);
  } catch (e) {
    return;
  }
  if (!isObject(msg) || !isObject(msg.stats)) return;
  if (msg.v !== 1) {
    notice(`The server speaks version ${msg.v} of the live protocol; reload the page.`);
    return;
  }
  if (msg.type === "snapshot") {
    state.values = new Map(Object.entries(msg.stats)); // everything, fresh
    for (const name of state.values.keys()) ensureTile(name);
    for (const name of state.tiles.keys()) renderStat(name);
  } else if (msg.type === "update") {
    for (const [name, value] of Object.entries(msg.stats)) {
      state.values.set(name, value);
      ensureTile(name);
      renderStat(name);
    }
  } else {
    return;
  }
  renderTotals();
  const now = new Date();
  const u = document.getElementById("updated");
  u.dateTime = now.toISOString();
  u.textContent = now.toLocaleTimeString();
}

function connect() {
  clearTimeout(state.retry);
  setConn("connecting", "connecting…");
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/ws";
  let ws;
  try {
    ws = new WebSocket(url);
  } catch (e) {
    reconnectLater();
    return;
  }
  state.ws = ws;
  ws.addEventListener("open", () => {
    if (state.ws !== ws) return;
    state.backoff = BACKOFF_MIN_MS;
    setConn("open", "live");
    notice("");
    loadStatistics(); // the API may have restarted with other statistics
  });
  ws.addEventListener("message", (ev) => {
    if (state.ws === ws) handleMessage(ev.data);
  });
  ws.addEventListener("close", () => {
    if (state.ws !== ws) return;
    state.ws = null;
    reconnectLater();
  });
  // "error" is always followed by "close".
}

function reconnectLater() {
  const delay = state.backoff;
  state.backoff = Math.min(state.backoff * 2, BACKOFF_MAX_MS);
  setConn("closed", `disconnected · retrying in ${delay < 1000 ? delay / 1000 : Math.round(delay / 1000)} s`);
  state.retry = setTimeout(connect, delay);
}

function start() {
  loadStatistics();
  connect();
  // Back online, or back to a tab whose timer the browser slowed: retry now.
  const retryNow = () => {
    if (state.ws === null && document.visibilityState !== "hidden") connect();
  };
  window.addEventListener("online", retryNow);
  document.addEventListener("visibilitychange", retryNow);
}

if (typeof module === "object" && module && module.exports) {
  module.exports = { shapeOf, rankedLists, formatNumber, formatGrams, formatValue, label, bucketLabel, firstByRegistrations };
}
if (typeof document !== "undefined") start();
