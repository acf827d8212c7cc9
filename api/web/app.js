// picstats live dashboard: plain ES2020, no framework, no build step.
//
// The tiles come from GET /api/statistics, the values from the websocket
// /api/ws: a snapshot of every statistic, then updates with only the ones that
// changed ({"v":1,"type":"snapshot"|"update","stats":{name: result}}). Each
// result is drawn by a renderer chosen by the shape of the JSON, never by the
// statistic's name, so a new statistic shows up without changes here:
//
//   {"buckets": [...]}                         bar chart (by from_grams)
//   {"<list>": [{"picture_id": ...}, ...]}     ranked lists with thumbnails
//   {"pictures": {"<id>": {...}, ...}}         table of the first 20 by registrations
//   anything else                              key/value list, nested objects nested
//
// Only #total (count) and #average (average_weight) are read by name.
//
// Time ranges: the range buttons subscribe the websocket to every windowed
// statistic over that range ({"type":"subscribe","stats":["count?from=-1h",
// ...]}); its answers ({"statistic","from","to","window_seconds","records",
// "result"}) are drawn from "result", with the range they cover under the
// title. A statistic kept over no windows shows its all-time result and says
// so. The "over time" chart subscribes to one statistic's window list
// ("count/windows?size=1h") and draws one numeric field of it per window.
"use strict";

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10000;
const TABLE_ROWS = 20;
const SVG_NS = "http://www.w3.org/2000/svg";

// The range buttons: relative `from` of each (Go durations: no days).
const RANGES = {
  all: { from: null, label: "all time" },
  "1h": { from: "-1h", label: "last hour" },
  "24h": { from: "-24h", label: "last 24 hours" },
  "7d": { from: "-168h", label: "last 7 days" },
};

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

// topicOf is the websocket topic of a statistic under a range: the range
// if the statistic is kept over windows, else the statistic itself.
function topicOf(name, range, windows) {
  const r = RANGES[range];
  return r && r.from && windows && windows.length > 0 ? `${name}?from=${r.from}` : name;
}

// chartTopic is the topic of the chart's window list, or null.
function chartTopic(chart) {
  return chart && chart.stat && chart.size ? `${chart.stat}/windows?size=${encodeURIComponent(chart.size)}` : null;
}

// unwrap splits a topic's value into what a tile draws and how it came:
// a range answer's result and range, an error, or the value itself.
function unwrap(value) {
  if (isObject(value) && typeof value.error === "string") return { error: value.error };
  if (isObject(value) && "result" in value && isNumber(value.window_seconds) && "from" in value) {
    return { result: value.result, range: { from: value.from, to: value.to, windowSeconds: value.window_seconds, records: value.records } };
  }
  return { result: value };
}

// numericFields lists the numeric fields of the windows' results, in the
// order they first appear.
function numericFields(windowsResult) {
  const fields = [];
  const wins = isObject(windowsResult) && Array.isArray(windowsResult.windows) ? windowsResult.windows : [];
  for (const w of wins) {
    if (!isObject(w) || !isObject(w.result)) continue;
    for (const [k, v] of Object.entries(w.result)) if (isNumber(v) && !fields.includes(k)) fields.push(k);
  }
  return fields;
}

// sizeLabel says a window size in words.
function sizeLabel(seconds) {
  if (seconds % 86400 === 0) return seconds === 86400 ? "day" : `${seconds / 86400} days`;
  if (seconds % 3600 === 0) return seconds === 3600 ? "hour" : `${seconds / 3600} hours`;
  if (seconds % 60 === 0) return seconds === 60 ? "minute" : `${seconds / 60} minutes`;
  return `${seconds} s`;
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

// barChart draws values as SVG bars, the last one lighter (still filling);
// points are {value, title}, first and last label the axis.
function barChart(points, ariaLabel, first, last) {
  const values = points.map((p) => (isNumber(p.value) ? p.value : 0));
  const max = Math.max(1, ...values);
  const W = 600;
  const H = 150;
  const step = W / Math.max(1, points.length);
  const chart = svg("svg", { class: "minutes", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" });
  chart.setAttribute("aria-label", `${ariaLabel}, at most ${formatNumber(max)}`);
  for (const y of [0.25, 0.5, 0.75]) chart.append(svg("line", { class: "grid", x1: 0, x2: W, y1: H * y, y2: H * y }));
  points.forEach((p, i) => {
    const h = (values[i] / max) * (H - 4);
    const rect = svg("rect", { x: i * step + step * 0.1, width: step * 0.8, y: H - h, height: h, class: i === points.length - 1 ? "current" : "" });
    const t = svg("title");
    t.textContent = p.title;
    rect.append(t);
    chart.append(rect);
  });
  return [
    el("div", { class: "chart-wrap" }, el("span", { class: "ymax" }, formatNumber(max)), chart),
    el("div", { class: "axis" }, el("span", null, first || ""), el("span", null, last || "")),
  ];
}

function minuteLabel(v) {
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? String(v) : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

// windowLabel is a window start, as precise as its size needs.
function windowLabel(v, seconds) {
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) return String(v);
  if (seconds >= 86400) return d.toLocaleDateString([], { month: "short", day: "numeric" });
  if (seconds >= 3600) return d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit" });
  return minuteLabel(v);
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
  ranked: renderRanked,
  pictures: renderPictures,
  fields: renderFields,
};
const wideShapes = new Set(["ranked", "pictures"]);

// ---------------------------------------------------------------------------
// The page.

const state = {
  values: new Map(), // websocket topic -> latest value
  tiles: new Map(), // statistic name -> {section, desc, note, body}
  windows: new Map(), // statistic name -> window sizes it is kept over ("1m", "1h", ...)
  listed: false, // /api/statistics has been read
  range: "all", // a key of RANGES
  chart: { stat: "", size: "", field: "" },
  ws: null,
  backoff: BACKOFF_MIN_MS,
  retry: 0,
  listTimer: 0,
};

function ensureTile(name) {
  let t = state.tiles.get(name);
  if (t) return t;
  const desc = el("p", { class: "desc" });
  const note = el("p", { class: "range-note" });
  const body = el("div", { class: "tile-body" });
  const section = el("section", { class: "tile", "data-stat": name, "aria-label": label(name) },
    el("header", { class: "tile-head" }, el("h2", null, label(name)), desc, note), body);
  t = { section, desc, note, body };
  state.tiles.set(name, t);
  document.getElementById("tiles").append(section);
  renderStat(name);
  return t;
}

// current is what a statistic's tile shows under the selected range.
function current(name) {
  return unwrap(state.values.get(topicOf(name, state.range, state.windows.get(name))));
}

// rangeNote says what a tile covers: the range answered, or all time.
function rangeNote(name, cur) {
  if (state.range === "all") return "";
  if (!cur.range) return (state.windows.get(name) || []).length === 0 ? "all time: not kept over windows" : "";
  const r = cur.range;
  const last = new Date(new Date(r.to).getTime() - r.windowSeconds * 1000).toISOString(); // the last window's start: labels are inclusive
  return `${windowLabel(r.from, r.windowSeconds)} – ${windowLabel(last, r.windowSeconds)} · ${sizeLabel(r.windowSeconds)} windows · ${formatNumber(r.records)} records`;
}

function renderStat(name) {
  const t = state.tiles.get(name);
  if (!t) return;
  const cur = current(name);
  const value = cur.result;
  const shape = cur.error ? "error" : shapeOf(value);
  t.section.dataset.shape = shape;
  t.section.classList.toggle("wide", wideShapes.has(shape));
  t.note.textContent = rangeNote(name, cur);
  t.note.dataset.range = cur.range ? "window" : "all";
  let nodes;
  if (shape === "error") {
    nodes = [el("p", { class: "nodata" }, cur.error)];
  } else if (shape === "empty") {
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
  const count = current("count").result;
  const avg = current("average_weight").result;
  document.getElementById("total").textContent = isObject(count) && isNumber(count.registrations) ? formatNumber(count.registrations) : "–";
  document.getElementById("average").textContent = isObject(avg) && isNumber(avg.average_weight_grams) ? formatGrams(avg.average_weight_grams) : "–";
  for (const e of document.querySelectorAll(".big-range")) e.textContent = RANGES[state.range].label;
}

// renderChart draws the chart's window list: one bar per window of the
// chosen field.
function renderChart() {
  const body = document.getElementById("chart");
  const topic = chartTopic(state.chart);
  const value = topic ? state.values.get(topic) : undefined;
  const fields = numericFields(value);
  const fieldSel = document.getElementById("chart-field");
  if (!fields.includes(state.chart.field)) state.chart.field = fields[0] || "";
  setOptions(fieldSel, fields.map((f) => [f, label(f)]), state.chart.field);
  let nodes;
  if (isObject(value) && typeof value.error === "string") {
    nodes = [el("p", { class: "nodata" }, value.error)];
  } else if (!isObject(value) || !Array.isArray(value.windows) || value.windows.length === 0 || !state.chart.field) {
    nodes = [el("p", { class: "nodata" }, "no windows yet")];
  } else {
    const secs = value.window_seconds;
    const wins = value.windows.filter(isObject);
    const f = state.chart.field;
    const points = wins.map((w) => ({
      value: isObject(w.result) ? w.result[f] : null,
      title: `${windowLabel(w.start, secs)}: ${isObject(w.result) ? formatValue(f, w.result[f]) : "–"} (${formatNumber(w.records)} records)`,
    }));
    nodes = [
      ...barChart(points, `${label(f)} of ${label(state.chart.stat)} per ${sizeLabel(secs)} over ${wins.length} windows`,
        windowLabel(wins[0].start, secs), windowLabel(wins[wins.length - 1].start, secs)),
      el("p", { class: "chart-note" }, `${label(f)} per ${sizeLabel(secs)} · ${wins.length} windows with records` +
        (value.late > 0 ? ` · ${formatNumber(value.late)} late records` : "")),
    ];
  }
  body.dataset.windows = isObject(value) && Array.isArray(value.windows) ? String(value.windows.length) : "0";
  morphChildren(body, el("div", null, ...nodes));
}

// setOptions makes a <select> offer [value, text] pairs, keeping selected.
function setOptions(sel, options, selected) {
  const want = options.map(([v]) => v).join("\n");
  if (sel.dataset.options !== want) {
    sel.replaceChildren(...options.map(([v, text]) => el("option", { value: v }, text)));
    sel.dataset.options = want;
  }
  sel.value = selected;
  sel.disabled = options.length === 0;
}

// setUpChart offers the statistics kept over windows and their sizes,
// keeping the choice if it is still possible (hours of count by default).
function setUpChart() {
  const names = [...state.windows].filter(([, w]) => w.length > 0).map(([n]) => n);
  if (!names.includes(state.chart.stat)) state.chart.stat = names.includes("count") ? "count" : names[0] || "";
  const sizes = state.windows.get(state.chart.stat) || [];
  if (!sizes.includes(state.chart.size)) state.chart.size = sizes.includes("1h") ? "1h" : sizes[0] || "";
  setOptions(document.getElementById("chart-stat"), names.map((n) => [n, label(n)]), state.chart.stat);
  setOptions(document.getElementById("chart-size"), sizes.map((z) => [z, "per " + sizeLabel(sizeSeconds(z))]), state.chart.size);
  document.getElementById("over-time").hidden = names.length === 0;
}

// sizeSeconds reads a window size label ("1m", "1h", "1d", "90s").
function sizeSeconds(z) {
  const m = /^(\d+)([smhd])$/.exec(z);
  return m ? Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2]] : 0;
}

// subscribe asks the websocket for what the page shows: every statistic
// under the selected range, and the chart's window list.
function subscribe() {
  if (!state.listed || !state.ws || state.ws.readyState !== WebSocket.OPEN) return;
  const topics = [...state.tiles.keys()].map((n) => topicOf(n, state.range, state.windows.get(n)));
  const chart = chartTopic(state.chart);
  if (chart) topics.push(chart);
  state.ws.send(JSON.stringify({ v: 1, type: "subscribe", stats: topics }));
}

function renderAll() {
  for (const name of state.tiles.keys()) renderStat(name);
  renderTotals();
  renderChart();
}

function selectRange(range) {
  if (!RANGES[range]) range = "all";
  state.range = range;
  for (const b of document.querySelectorAll("#ranges button")) b.setAttribute("aria-pressed", String(b.dataset.range === range));
  if (location.hash !== "#range=" + range) history.replaceState(null, "", range === "all" ? location.pathname : "#range=" + range);
  subscribe();
  renderAll(); // what is known already; the snapshot of the new topics follows
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
    state.windows = new Map(list.map((s) => [s.name, Array.isArray(s.windows) ? s.windows : []]));
    for (const s of list) {
      const t = ensureTile(s.name);
      t.desc.textContent = s.description || "";
      container.append(t.section); // in the API's order
    }
    state.listed = true;
    setUpChart();
    subscribe();
    renderAll();
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
  if (!isObject(msg) || (!isObject(msg.stats) && msg.type !== "error")) return;
  if (msg.v !== 1) {
    notice(`The server speaks version ${msg.v} of the live protocol; reload the page.`);
    return;
  }
  if (msg.type === "error") {
    notice(`The server refused what this page asked for: ${msg.error}`);
    return;
  }
  if (msg.type === "snapshot") {
    state.values = new Map(Object.entries(msg.stats)); // everything subscribed, fresh
  } else if (msg.type === "update") {
    for (const [topic, value] of Object.entries(msg.stats)) state.values.set(topic, value);
  } else {
    return;
  }
  for (const topic of Object.keys(msg.stats)) {
    const name = topic.split(/[?/]/)[0];
    if (topic === chartTopic(state.chart)) continue;
    ensureTile(name);
    if (topic === topicOf(name, state.range, state.windows.get(name))) renderStat(name);
  }
  if (msg.type === "snapshot") for (const name of state.tiles.keys()) renderStat(name);
  renderChart();
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
  for (const b of document.querySelectorAll("#ranges button")) b.addEventListener("click", () => selectRange(b.dataset.range));
  const fromHash = /^#range=(.+)$/.exec(location.hash);
  selectRange(fromHash ? fromHash[1] : "all");
  const chartChanged = () => {
    state.chart.stat = document.getElementById("chart-stat").value;
    state.chart.size = document.getElementById("chart-size").value;
    state.chart.field = document.getElementById("chart-field").value;
    setUpChart();
    subscribe();
    renderChart();
  };
  for (const id of ["chart-stat", "chart-size", "chart-field"]) document.getElementById(id).addEventListener("change", chartChanged);
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
  module.exports = { shapeOf, rankedLists, formatNumber, formatGrams, formatValue, label, bucketLabel, firstByRegistrations,
    topicOf, chartTopic, unwrap, numericFields, sizeLabel };
}
if (typeof document !== "undefined") start();
