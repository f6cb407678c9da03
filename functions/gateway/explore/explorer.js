// logpipe log explorer: the browser side of GET /explore. Vanilla ES module, no build step, no network but the
// page's own origin. The API key lives in sessionStorage (this tab only) and travels as `Authorization: Bearer`;
// the address bar holds the view (q, levels, source, range, selected event), never the key.

const LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
const PRESETS = { "15m": 15 * 60e3, "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3 };
const PAGE_SIZE = 100;
const MAX_ROWS = 2000; // rows kept in the page (live tail drops the oldest beyond it; paging stops at it)
const TAIL_INTERVAL_MS = 2000;
const TAIL_PAGES = 2; // pages of 1,000 new events fetched per poll at most (the page keeps 2,000) before reporting a gap
const BUCKETS = 60;
const KEY_STORAGE = "logpipe.explorer.key";

// The API is on the page's origin; a stage or mapping prefix in front of /explore is kept.
const BASE = location.pathname.replace(/\/explore(\/.*)?$/, "");

const $ = (id) => document.getElementById(id);
const el = {
  app: $("app"), signinForm: $("signin-form"), signinKey: $("signin-key"), signinError: $("signin-error"),
  signout: $("signout-button"), queryForm: $("query-form"), q: $("query-input"), source: $("source-input"),
  from: $("from-input"), to: $("to-input"), banner: $("error-banner"), bannerText: $("error-text"),
  bannerDismiss: $("error-dismiss"), histogram: $("histogram"), histogramTitle: $("histogram-title"),
  status: $("results-status"), liveStatus: $("live-status"), scroll: $("results-scroll"), body: $("results-body"),
  end: $("results-end"), loadMore: $("load-more"), detail: $("detail"), detailTitle: $("detail-title"),
  detailFields: $("detail-fields"), detailAttributes: $("detail-attributes"), detailCopy: $("detail-copy"),
  detailClose: $("detail-close"), context: $("context-list"), live: $("live-toggle"), livePause: $("live-pause"),
  wrap: $("wrap-toggle"), receiptForm: $("receipt-form"), receiptInput: $("receipt-input"),
  receiptResult: $("receipt-result"),
};

// ---- state ---------------------------------------------------------------------------------------------------

const state = {
  q: "", levels: new Set(), source: "",
  range: { preset: "1h" }, // or { from: ISO, to: ISO }
  selectedId: null, // the row under the keyboard cursor / opened in the detail panel
  openId: null, // the event shown in the detail panel
  rows: [], // events in the page, newest first
  ids: new Set(),
  nextCursor: null,
  window: null, // { from: Date, to: Date } the last run resolved the range to
  generation: 0, // bumps on every run: answers of an older run are dropped
  loadingMore: false,
  trimmed: false,
  tail: { on: false, paused: false, timer: null, busy: false, polls: 0 },
  firstRowsPainted: false,
};

// ---- API ------------------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status; this.code = code; this.details = details;
  }
}

function apiKey() { return sessionStorage.getItem(KEY_STORAGE); }

let runController = null;

async function api(path, params, { signal } = {}) {
  const url = new URL(BASE + path, location.origin);
  if (params) url.search = params.toString();
  let response;
  try {
    response = await fetch(url, {
      headers: { Authorization: `Bearer ${apiKey()}`, Accept: "application/json" },
      signal, cache: "no-store", credentials: "omit",
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network_error", "The API cannot be reached (offline, or the gateway is down).", null);
  }
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  if (!response.ok) {
    const error = body && body.status === "error" && body.error ? body.error : {};
    throw new ApiError(response.status, error.code || `http_${response.status}`,
      error.message || `${response.status} ${response.statusText}`, error.details ?? null);
  }
  return body;
}

function filterParams({ withRange = true, window = state.window } = {}) {
  const params = new URLSearchParams();
  if (state.q.trim()) params.set("q", state.q.trim());
  for (const level of LEVELS) if (state.levels.has(level)) params.append("level", level);
  if (state.source.trim()) params.set("source", state.source.trim());
  if (withRange && window) {
    params.set("from", window.from.toISOString());
    params.set("to", window.to.toISOString());
  }
  return params;
}

// ---- errors and auth -------------------------------------------------------------------------------------------

function describe(error) {
  const details = error.details == null ? "" : ` — ${typeof error.details === "string" ? error.details : JSON.stringify(error.details)}`;
  return `${error.status ? error.status + " " : ""}${error.code}: ${error.message}${details}`;
}

function showError(error) {
  if (error.name === "AbortError") return;
  if (error.status === 401 || error.status === 403) { signOut(authMessage(error)); return; }
  el.bannerText.textContent = error instanceof ApiError ? describe(error) : String(error);
  el.banner.hidden = false;
}

function clearError() { el.banner.hidden = true; el.bannerText.textContent = ""; }

function authMessage(error) {
  if (error.status === 401) return `The API key was refused (401 ${error.code}): ${error.message}. Check it and sign in again.`;
  return `This API key may not read logs (403 ${error.code}): ${error.message}. Use a key with the read scope.`;
}

function setSignedIn(signedIn) {
  el.app.classList.toggle("is-signed-out", !signedIn);
  if (!signedIn) setTimeout(() => el.signinKey.focus(), 0);
}

function signOut(message = "") {
  sessionStorage.removeItem(KEY_STORAGE);
  stopTail();
  state.generation++;
  if (runController) runController.abort();
  resetRows();
  closeDetail({ keepUrl: true });
  clearError();
  el.histogram.replaceChildren();
  el.histogramTitle.textContent = "";
  el.receiptResult.textContent = "";
  el.signinError.textContent = message;
  el.signinKey.value = "";
  setSignedIn(false);
}

// ---- URL (permalink) -------------------------------------------------------------------------------------------

function readUrl() {
  const params = new URLSearchParams(location.search);
  state.q = params.get("q") || "";
  state.levels = new Set(params.getAll("level").map((l) => l.toUpperCase()).filter((l) => LEVELS.includes(l)));
  state.source = params.get("source") || "";
  const from = params.get("from"), to = params.get("to"), preset = params.get("range");
  if (from && to && !isNaN(Date.parse(from)) && !isNaN(Date.parse(to))) state.range = { from, to };
  else state.range = { preset: PRESETS[preset] ? preset : "1h" };
  state.openId = params.get("event") || null;
  state.selectedId = state.openId;
  writeControls();
}

function writeUrl({ push = false } = {}) {
  const params = new URLSearchParams();
  if (state.q.trim()) params.set("q", state.q.trim());
  for (const level of LEVELS) if (state.levels.has(level)) params.append("level", level);
  if (state.source.trim()) params.set("source", state.source.trim());
  if (state.range.preset) params.set("range", state.range.preset);
  else { params.set("from", state.range.from); params.set("to", state.range.to); }
  if (state.openId) params.set("event", state.openId);
  const url = `${location.pathname}?${params}`;
  if (url === location.pathname + location.search) return;
  if (push) history.pushState(null, "", url); else history.replaceState(null, "", url);
}

// ---- controls ---------------------------------------------------------------------------------------------------

function toLocalInput(date) {
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

function writeControls() {
  el.q.value = state.q;
  el.source.value = state.source;
  for (const button of document.querySelectorAll(".level-toggle")) {
    button.setAttribute("aria-pressed", String(state.levels.has(button.dataset.level)));
  }
  for (const button of document.querySelectorAll(".range-preset")) {
    button.setAttribute("aria-pressed", String(state.range.preset === button.dataset.range));
  }
  if (state.range.preset) {
    el.from.value = ""; el.to.value = "";
  } else {
    el.from.value = toLocalInput(new Date(state.range.from));
    el.to.value = toLocalInput(new Date(state.range.to));
  }
}

function readControls() {
  state.q = el.q.value;
  state.source = el.source.value;
  // Absolute inputs win over a preset once both are filled in (they are emptied when a preset is chosen).
  if (el.from.value && el.to.value) {
    const from = new Date(el.from.value), to = new Date(el.to.value);
    if (!isNaN(from) && !isNaN(to)) {
      if (from >= to) throw new ApiError(0, "invalid_range", "From must be before To.", null);
      state.range = { from: from.toISOString(), to: to.toISOString() };
    }
  }
}

function resolveWindow() {
  if (state.range.preset) {
    const to = new Date();
    return { from: new Date(to.getTime() - PRESETS[state.range.preset]), to };
  }
  return { from: new Date(state.range.from), to: new Date(state.range.to) };
}

// ---- running a query ---------------------------------------------------------------------------------------------

async function run({ push = true } = {}) {
  if (!apiKey()) { setSignedIn(false); return; }
  try { readControls(); } catch (error) { showError(error); return; }
  writeControls();
  clearError();
  writeUrl({ push });
  state.window = resolveWindow();
  const generation = ++state.generation;
  if (runController) runController.abort();
  runController = new AbortController();
  const { signal } = runController;
  el.status.textContent = "Loading…";
  el.app.classList.add("is-loading");
  const page = api("/api/logs", withLimit(filterParams(), PAGE_SIZE), { signal });
  const histogram = loadHistogram(generation, signal);
  try {
    const answer = await page;
    if (generation !== state.generation) return;
    resetRows();
    appendRows(answer.items);
    state.nextCursor = answer.nextCursor;
    updateStatus();
    markFirstRows();
    await reopenSelected(generation);
    if (state.tail.on) scheduleTail(0);
  } catch (error) {
    if (generation === state.generation) { el.status.textContent = ""; showError(error); }
  } finally {
    if (generation === state.generation) el.app.classList.remove("is-loading");
  }
  await histogram;
}

function withLimit(params, limit) { params.set("limit", String(limit)); return params; }

async function reopenSelected(generation) {
  if (state.selectedId && rowFor(state.selectedId)) select(state.selectedId, { scroll: true });
  const id = state.openId;
  if (!id || (!el.detail.hidden && el.detail.dataset.eventId === id)) return;
  // A permalink's event: from the rows when it is among them, else on its own.
  let event = state.rows.find((e) => e.id === id);
  if (!event) {
    try { event = await api(`/api/logs/${encodeURIComponent(id)}`); } catch (error) { showError(error); return; }
    if (generation !== state.generation) return;
  }
  openDetail(event);
}

async function loadMore() {
  if (!state.nextCursor || state.loadingMore || state.rows.length >= MAX_ROWS) return;
  state.loadingMore = true;
  const generation = state.generation;
  const params = withLimit(filterParams(), Math.min(PAGE_SIZE, MAX_ROWS - state.rows.length));
  params.set("cursor", state.nextCursor);
  el.end.textContent = "Loading older events…";
  try {
    const answer = await api("/api/logs", params, { signal: runController?.signal });
    if (generation !== state.generation) return;
    appendRows(answer.items);
    state.nextCursor = answer.nextCursor;
  } catch (error) {
    if (generation === state.generation) showError(error);
  } finally {
    state.loadingMore = false;
    if (generation === state.generation) updateStatus();
  }
  // The observer fires on changes only: if the end of the list is still in view (a short page), go on.
  if (generation === state.generation && state.nextCursor && endInView()) loadMore();
}

function endInView() {
  const box = el.end.getBoundingClientRect(), view = el.scroll.getBoundingClientRect();
  return box.top < view.bottom + 400 && el.scroll.offsetParent !== null;
}

function updateStatus() {
  const n = state.rows.length;
  const range = state.window ? `${formatShort(state.window.from)} → ${formatShort(state.window.to)}` : "";
  const more = state.nextCursor && n < MAX_ROWS ? "+" : "";
  el.status.textContent = `${n.toLocaleString()}${more} event${n === 1 && !more ? "" : "s"} · ${range}`;
  const capped = n >= MAX_ROWS;
  el.loadMore.hidden = !state.nextCursor || capped;
  if (state.trimmed) el.end.textContent = `Showing the newest ${MAX_ROWS.toLocaleString()} events; older rows were dropped while tailing. Run the query again to page back.`;
  else if (capped && state.nextCursor) el.end.textContent = `${MAX_ROWS.toLocaleString()} events shown, the most this page keeps. Narrow the range (drag on the histogram) to see older ones.`;
  else if (!state.nextCursor) el.end.textContent = n ? "End of results." : "No events match. Widen the time range or remove filters.";
  else el.end.textContent = "";
}

// ---- rows ---------------------------------------------------------------------------------------------------------

// Times in the user's zone as YYYY-MM-DD HH:mm:ss.SSS (sortable, unambiguous); UTC in the title.
const pad = (n, w = 2) => String(n).padStart(w, "0");
const ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
const shortFormat = new Intl.DateTimeFormat(undefined, {
  month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
});
function formatTime(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return String(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}
function formatShort(date) { return shortFormat.format(date); }
function utcTitle(iso) { const d = new Date(iso); return isNaN(d) ? String(iso) : `${d.toISOString().replace("T", " ").replace("Z", " UTC")}`; }

function flatten(value, prefix = "", out = []) {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    const keys = Object.keys(value);
    if (!keys.length && prefix) out.push([prefix, "{}"]);
    for (const key of keys) flatten(value[key], prefix ? `${prefix}.${key}` : key, out);
  } else {
    out.push([prefix, typeof value === "string" ? value : JSON.stringify(value)]);
  }
  return out;
}

function node(tag, className, text) {
  const n = document.createElement(tag);
  if (className) n.className = className;
  if (text != null) n.textContent = text;
  return n;
}

function rowElement(event) {
  const tr = node("tr", `row lvl-row-${LEVELS.includes(event.level) ? event.level : "INFO"}`);
  tr.dataset.eventId = event.id;
  tr.setAttribute("data-testid", "result-row");
  const time = node("td", "c-time", formatTime(event.timestamp));
  time.title = utcTitle(event.timestamp);
  const level = node("td", "c-level");
  level.append(node("span", `badge lvl-${event.level}`, event.level));
  const source = node("td", "c-source", event.source);
  source.title = event.source;
  const message = node("td", "c-msg");
  const line = node("div", "msg-line");
  line.append(node("span", "msg", event.message));
  for (const [key, value] of flatten(event.attributes || {})) {
    const chip = node("span", "chip");
    chip.append(node("span", "chip-k", key), node("span", "chip-eq", "="), node("span", "chip-v", value));
    line.append(chip);
  }
  message.append(line);
  tr.append(time, level, source, message);
  return tr;
}

function resetRows() {
  state.rows = []; state.ids = new Set(); state.nextCursor = null; state.trimmed = false;
  el.body.replaceChildren();
  el.end.textContent = "";
  el.loadMore.hidden = true;
}

function appendRows(events) {
  const fragment = document.createDocumentFragment();
  for (const event of events) {
    if (state.ids.has(event.id)) continue;
    state.ids.add(event.id); state.rows.push(event);
    fragment.append(rowElement(event));
  }
  el.body.append(fragment);
}

function prependRows(events) { // events newest first, all unseen
  if (!events.length) return;
  const fragment = document.createDocumentFragment();
  for (const event of events) { state.ids.add(event.id); fragment.append(rowElement(event)); }
  const anchor = el.scroll.scrollTop > 0 ? el.body.firstElementChild : null;
  const before = anchor ? anchor.getBoundingClientRect().top : 0;
  el.body.prepend(fragment);
  state.rows = events.concat(state.rows);
  // Reading older rows while new ones arrive: keep them still on screen.
  if (anchor) el.scroll.scrollTop += anchor.getBoundingClientRect().top - before;
  for (const row of el.body.querySelectorAll("tr.is-new")) row.classList.remove("is-new");
  for (let i = 0, row = el.body.firstElementChild; i < events.length && row; i++, row = row.nextElementSibling) row.classList.add("is-new");
  trimRows();
}

function trimRows() {
  while (state.rows.length > MAX_ROWS) {
    const dropped = state.rows.pop();
    state.ids.delete(dropped.id);
    const row = el.body.lastElementChild;
    if (row) row.remove();
    state.trimmed = true;
    state.nextCursor = null;
  }
}

function rowFor(id) { return id ? el.body.querySelector(`tr[data-event-id="${CSS.escape(id)}"]`) : null; }

function select(id, { scroll = false } = {}) {
  for (const row of el.body.querySelectorAll("tr.is-selected")) { row.classList.remove("is-selected"); row.removeAttribute("aria-selected"); }
  state.selectedId = id;
  const row = rowFor(id);
  if (row) {
    row.classList.add("is-selected"); row.setAttribute("aria-selected", "true");
    if (scroll) row.scrollIntoView({ block: "nearest" });
  }
}

function markFirstRows() {
  if (state.firstRowsPainted || !state.rows.length) return;
  state.firstRowsPainted = true;
  // Two frames: the rows have been laid out and painted once the second callback runs.
  requestAnimationFrame(() => requestAnimationFrame(() => {
    performance.mark("explorer:first-rows");
    window.__explorer = { ...(window.__explorer || {}), firstRowsMs: performance.now() };
  }));
}

// ---- histogram ------------------------------------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attributes = {}) {
  const n = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) n.setAttribute(key, String(value));
  return n;
}

let histogramData = null;

async function loadHistogram(generation, signal, window = state.window) {
  const params = filterParams({ window });
  params.set("buckets", String(BUCKETS));
  try {
    const answer = await api("/api/logs/histogram", params, { signal });
    if (generation !== state.generation) return;
    histogramData = answer;
    drawHistogram();
  } catch (error) {
    if (generation !== state.generation || error.name === "AbortError") return;
    histogramData = null;
    el.histogram.replaceChildren();
    el.histogramTitle.textContent = "";
    showError(error);
  }
}

function niceMax(n) {
  if (n <= 5) return Math.max(1, n);
  const power = 10 ** Math.floor(Math.log10(n));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= n) return step * power;
  return n;
}

function drawHistogram() {
  const data = histogramData;
  const box = el.histogram.getBoundingClientRect();
  const width = Math.max(200, Math.round(box.width)), height = Math.max(60, Math.round(box.height));
  el.histogram.setAttribute("viewBox", `0 0 ${width} ${height}`);
  el.histogram.replaceChildren();
  if (!data) return;
  const left = 44, right = 8, top = 6, bottom = 18;
  const from = Date.parse(data.from), to = Date.parse(data.to), span = Math.max(1, to - from);
  const plotW = width - left - right, plotH = height - top - bottom;
  const x = (t) => left + ((Math.min(Math.max(t, from), to) - from) / span) * plotW;
  let max = 0, total = 0;
  for (const bucket of data.buckets) {
    const sum = LEVELS.reduce((acc, l) => acc + (bucket.counts[l] || 0), 0);
    max = Math.max(max, sum); total += sum;
  }
  const yMax = niceMax(max);
  el.histogramTitle.textContent = `${total.toLocaleString()} events · ${formatDuration(data.bucketSeconds)} buckets`;
  el.histogram.dataset.total = String(total);
  const grid = svg("g", { class: "h-grid" });
  for (const fraction of [0, 0.5, 1]) {
    const y = top + plotH - fraction * plotH;
    grid.append(svg("line", { x1: left, x2: width - right, y1: y, y2: y }));
    const label = svg("text", { x: left - 6, y: y + 3, "text-anchor": "end" });
    label.textContent = Math.round(yMax * fraction).toLocaleString();
    grid.append(label);
  }
  el.histogram.append(grid);
  const bars = svg("g", { class: "h-bars" });
  for (const bucket of data.buckets) {
    const start = Date.parse(bucket.start), end = start + data.bucketSeconds * 1000;
    const x0 = x(start), x1 = x(end);
    if (x1 - x0 <= 0) continue;
    const group = svg("g", { class: "h-bucket" });
    const title = svg("title");
    const lines = [`${formatShort(new Date(start))} – ${formatShort(new Date(end))}`];
    let y = top + plotH;
    for (const level of LEVELS) {
      const count = bucket.counts[level] || 0;
      if (!count) continue;
      lines.push(`${level}: ${count.toLocaleString()}`);
      const h = (count / yMax) * plotH;
      y -= h;
      group.append(svg("rect", { x: x0 + 0.5, y, width: Math.max(1, x1 - x0 - 1), height: h, class: `lvl-fill-${level}` }));
    }
    group.append(svg("rect", { x: x0, y: top, width: x1 - x0, height: plotH, class: "h-hit" }));
    title.textContent = lines.join("\n");
    group.prepend(title);
    bars.append(group);
  }
  el.histogram.append(bars);
  const axis = svg("g", { class: "h-axis" });
  const ticks = Math.max(2, Math.min(8, Math.floor(plotW / 140)));
  for (let i = 0; i <= ticks; i++) {
    const t = from + (span * i) / ticks;
    const label = svg("text", { x: x(t), y: height - 4, "text-anchor": i === 0 ? "start" : i === ticks ? "end" : "middle" });
    label.textContent = tickLabel(new Date(t), span);
    axis.append(label);
  }
  el.histogram.append(axis);
  el.histogram.append(svg("rect", { class: "h-selection", x: 0, y: top, width: 0, height: plotH, visibility: "hidden" }));
  el.histogram.dataset.left = String(left); el.histogram.dataset.right = String(right);
}

function tickLabel(date, span) {
  const options = span > 2 * 86400e3 ? { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }
    : { hour: "2-digit", minute: "2-digit", ...(span < 10 * 60e3 ? { second: "2-digit" } : {}) };
  return new Intl.DateTimeFormat(undefined, { ...options, hour12: false }).format(date);
}

function formatDuration(seconds) {
  if (seconds % 86400 === 0) return `${seconds / 86400} d`;
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

function histogramTime(clientX) {
  const box = el.histogram.getBoundingClientRect();
  const width = box.width, left = 44, right = 8;
  const fraction = Math.min(1, Math.max(0, (clientX - box.left - left) / (width - left - right)));
  const from = Date.parse(histogramData.from), to = Date.parse(histogramData.to);
  return { t: from + fraction * (to - from), x: left + fraction * (width - left - right) };
}

let drag = null;
el.histogram.addEventListener("pointerdown", (e) => {
  if (!histogramData || e.button !== 0) return;
  drag = { start: histogramTime(e.clientX) };
  el.histogram.setPointerCapture(e.pointerId);
  e.preventDefault();
});
el.histogram.addEventListener("pointermove", (e) => {
  if (!drag) return;
  const now = histogramTime(e.clientX);
  const rect = el.histogram.querySelector(".h-selection");
  if (!rect) return;
  rect.setAttribute("x", String(Math.min(now.x, drag.start.x)));
  rect.setAttribute("width", String(Math.abs(now.x - drag.start.x)));
  rect.setAttribute("visibility", "visible");
});
el.histogram.addEventListener("pointerup", (e) => {
  if (!drag) return;
  const end = histogramTime(e.clientX), start = drag.start;
  drag = null;
  if (Math.abs(end.x - start.x) < 4) { drawHistogram(); return; }
  const from = new Date(Math.floor(Math.min(start.t, end.t) / 1000) * 1000);
  const to = new Date(Math.ceil(Math.max(start.t, end.t) / 1000) * 1000);
  state.range = { from: from.toISOString(), to: to.toISOString() };
  writeControls();
  run();
});
el.histogram.addEventListener("pointercancel", () => { drag = null; drawHistogram(); });
new ResizeObserver(() => { if (histogramData) drawHistogram(); }).observe(el.histogram);

// ---- detail panel -----------------------------------------------------------------------------------------------------

const FILTERABLE = {
  level: { filter: "only this level", exclude: "deselect this level" },
  source: { filter: "only this source" }, // the read API has no "source is not"
  message: { filter: "search for this phrase", exclude: "exclude this phrase" },
};

function openDetail(event) {
  state.openId = event.id;
  state.selectedId = event.id;
  select(event.id);
  el.detail.hidden = false;
  el.app.classList.add("has-detail");
  el.detail.dataset.eventId = event.id;
  el.detailTitle.replaceChildren(node("span", `badge lvl-${event.level}`, event.level), document.createTextNode(" "),
    node("span", "detail-time", formatTime(event.timestamp)));
  el.detailTitle.title = utcTitle(event.timestamp);
  renderFields(event);
  el.detailAttributes.replaceChildren(tree(event.attributes || {}, 0));
  if (!Object.keys(event.attributes || {}).length) el.detailAttributes.replaceChildren(node("p", "muted", "No attributes."));
  el.detailCopy.onclick = () => copy(JSON.stringify(event, null, 2), el.detailCopy);
  writeUrl();
  loadContext(event);
}

function renderFields(event) {
  const fields = [
    ["id", event.id], ["level", event.level], ["source", event.source], ["message", event.message],
    ["timestamp", event.timestamp], ["receivedAt", event.receivedAt], ["organizationId", event.organizationId],
    ["traceId", event.traceId], ["spanId", event.spanId],
  ];
  const body = document.createElement("tbody");
  for (const [name, value] of fields) {
    const tr = node("tr");
    tr.dataset.field = name;
    const th = node("th", null, name);
    th.scope = "row";
    const td = node("td", name === "message" ? "mono wrap" : "mono");
    if (value == null || value === "") td.append(node("span", "muted", "—"));
    else if (name === "timestamp" || name === "receivedAt") {
      td.append(node("span", null, formatTime(value)), node("span", "muted utc", ` ${utcTitle(value)}`));
      td.title = value;
    } else td.append(node("span", name === "level" ? `badge lvl-${value}` : null, value));
    const actions = node("td", "field-actions");
    const allowed = FILTERABLE[name];
    if (allowed && value) {
      const filter = node("button", "btn btn-icon", "+");
      filter.type = "button"; filter.title = `Filter: ${allowed.filter}`; filter.setAttribute("aria-label", filter.title);
      filter.dataset.testid = `filter-${name}`; filter.setAttribute("data-testid", `filter-${name}`);
      filter.addEventListener("click", () => applyField(name, value, false));
      actions.append(filter);
      if (allowed.exclude) {
        const exclude = node("button", "btn btn-icon", "−");
        exclude.type = "button"; exclude.title = `Exclude: ${allowed.exclude}`; exclude.setAttribute("aria-label", exclude.title);
        exclude.setAttribute("data-testid", `exclude-${name}`);
        exclude.addEventListener("click", () => applyField(name, value, true));
        actions.append(exclude);
      }
    }
    if (value && ["id", "traceId", "spanId"].includes(name)) {
      const button = node("button", "btn btn-icon btn-copy", "copy");
      button.type = "button"; button.title = `Copy ${name}`; button.setAttribute("aria-label", button.title);
      button.addEventListener("click", () => copy(value, button));
      actions.append(button);
    }
    tr.append(th, td, actions);
    body.append(tr);
  }
  el.detailFields.replaceChildren(body);
}

// "Add to filter" and "exclude" on a field: level and source map onto the query bar's controls; the message goes into
// the text query as a phrase ("..." to require it, -"..." to exclude it, the read API's websearch syntax). Excluding a
// level deselects it (from "all levels" it leaves the other five). The API cannot exclude a source, so there is no
// exclude for it.
function applyField(name, value, exclude) {
  if (name === "level") {
    if (exclude) {
      if (!state.levels.size) state.levels = new Set(LEVELS);
      state.levels.delete(value);
    } else state.levels = new Set([value]);
  } else if (name === "source") {
    state.source = value;
  } else if (name === "message") {
    const phrase = `"${value.replace(/"/g, " ").replace(/\s+/g, " ").trim().split(" ").slice(0, 12).join(" ")}"`;
    state.q = `${el.q.value.trim()} ${exclude ? "-" : ""}${phrase}`.trim();
  }
  writeControls();
  run();
}

function tree(value, depth) {
  if (value === null || typeof value !== "object") {
    return node("span", `tv tv-${value === null ? "null" : typeof value}`, typeof value === "string" ? JSON.stringify(value) : String(value));
  }
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
  const list = node("ul", "tree-list");
  for (const [key, child] of entries) {
    const li = node("li");
    if (child && typeof child === "object") {
      const details = document.createElement("details");
      details.open = depth < 2;
      const summary = node("summary");
      const size = Array.isArray(child) ? `[${child.length}]` : `{${Object.keys(child).length}}`;
      summary.append(node("span", "tk", key), node("span", "muted", ` ${size}`));
      details.append(summary, tree(child, depth + 1));
      li.append(details);
    } else {
      li.append(node("span", "tk", key), node("span", "muted", ": "), tree(child, depth + 1));
    }
    list.append(li);
  }
  return list;
}

async function copy(text, button) {
  let done = false;
  try { await navigator.clipboard.writeText(text); done = true; } catch {
    const area = node("textarea"); area.value = text; document.body.append(area); area.select();
    try { done = document.execCommand("copy"); } catch { done = false; }
    area.remove();
  }
  const label = button.textContent;
  button.textContent = done ? "Copied" : "Copy failed";
  setTimeout(() => { button.textContent = label; }, 1200);
}

let contextController = null;
async function loadContext(event) {
  if (contextController) contextController.abort();
  contextController = new AbortController();
  el.context.replaceChildren(node("li", "muted", "Loading context…"));
  try {
    const params = new URLSearchParams({ before: "10", after: "10" });
    const answer = await api(`/api/logs/${encodeURIComponent(event.id)}/context`, params, { signal: contextController.signal });
    if (state.openId !== event.id) return;
    const items = [...answer.before, answer.event, ...answer.after];
    el.context.replaceChildren(...items.map((e) => contextItem(e, e.id === event.id)));
    const current = el.context.querySelector(".is-current");
    if (current) el.context.scrollTop = current.offsetTop - el.context.clientHeight / 2 + current.offsetHeight / 2;
  } catch (error) {
    if (error.name === "AbortError") return;
    if (error.status === 401 || error.status === 403) { showError(error); return; }
    el.context.replaceChildren(node("li", "muted", `Context unavailable: ${describe(error)}`));
  }
}

function contextItem(event, current) {
  const li = node("li", `ctx lvl-row-${event.level}${current ? " is-current" : ""}`);
  li.dataset.eventId = event.id;
  li.setAttribute("data-testid", "context-item");
  const time = node("span", "ctx-time", formatTime(event.timestamp).slice(11));
  time.title = utcTitle(event.timestamp);
  li.append(time, node("span", `badge lvl-${event.level}`, event.level), node("span", "ctx-msg", event.message));
  if (!current) {
    li.tabIndex = 0;
    li.addEventListener("click", () => openDetail(event));
    li.addEventListener("keydown", (e) => { if (e.key === "Enter") openDetail(event); });
  }
  return li;
}

function closeDetail({ keepUrl = false } = {}) {
  if (contextController) contextController.abort();
  el.detail.hidden = true;
  el.app.classList.remove("has-detail");
  state.openId = null;
  if (!keepUrl) writeUrl();
}

// ---- live tail --------------------------------------------------------------------------------------------------------

function startTail() {
  state.tail.on = true; state.tail.paused = false;
  el.livePause.hidden = false; el.livePause.textContent = "Pause";
  el.app.classList.add("is-tailing");
  scheduleTail(0);
}

function stopTail() {
  state.tail.on = false; state.tail.paused = false;
  clearTimeout(state.tail.timer);
  el.live.checked = false; el.livePause.hidden = true;
  el.app.classList.remove("is-tailing");
  el.liveStatus.textContent = "";
}

function scheduleTail(delay = TAIL_INTERVAL_MS) {
  clearTimeout(state.tail.timer);
  if (!state.tail.on || state.tail.paused) return;
  state.tail.timer = setTimeout(pollTail, delay);
}

function newestTimestamp() {
  let newest = null;
  for (const event of state.rows.slice(0, 50)) if (!newest || Date.parse(event.timestamp) > Date.parse(newest)) newest = event.timestamp;
  return newest;
}

async function pollTail() {
  if (!state.tail.on || state.tail.paused || state.tail.busy) return;
  state.tail.busy = true;
  const generation = state.generation;
  try {
    // From the newest event seen (inclusive: it comes again and is dropped by id); no upper bound, so a relative
    // range follows the clock. An absolute range is tailed too: the user asked for it.
    const params = filterParams({ withRange: false });
    const since = newestTimestamp() || (state.window ? state.window.from.toISOString() : null);
    if (since) params.set("from", since);
    params.set("limit", "1000");
    const fresh = [];
    let cursor = null, pages = 0, gap = false;
    do {
      if (cursor) params.set("cursor", cursor);
      const answer = await api("/api/logs", params);
      if (generation !== state.generation || !state.tail.on) return;
      let reachedSeen = false;
      for (const event of answer.items) {
        if (state.ids.has(event.id)) { reachedSeen = true; continue; }
        fresh.push(event);
      }
      cursor = reachedSeen ? null : answer.nextCursor;
      pages++;
      gap = Boolean(cursor) && pages >= TAIL_PAGES;
    } while (cursor && pages < TAIL_PAGES);
    const unique = [];
    const seen = new Set();
    for (const event of fresh) if (!seen.has(event.id)) { seen.add(event.id); unique.push(event); }
    prependRows(unique);
    state.tail.polls++;
    const now = new Date();
    el.liveStatus.textContent = `Live · ${pad(now.getHours())}:${pad(now.getMinutes())}:${pad(now.getSeconds())}${unique.length ? ` · +${unique.length}` : ""}${gap ? " · more arrived than shown" : ""}`;
    if (unique.length) updateStatus();
    // A relative range's histogram follows the clock every 10 s (the rows' paging keeps the window it ran with).
    if (state.range.preset && state.tail.polls % 5 === 0) loadHistogram(generation, undefined, resolveWindow());
  } catch (error) {
    if (generation === state.generation) { showError(error); el.liveStatus.textContent = "Live · retrying"; }
  } finally {
    state.tail.busy = false;
    scheduleTail(); // also after a run replaced this poll's query: its own scheduleTail(0) found the poll busy
  }
}

// ---- receipts ---------------------------------------------------------------------------------------------------------

async function lookupReceipt() {
  const id = el.receiptInput.value.trim();
  el.receiptResult.replaceChildren();
  el.receiptResult.dataset.status = "";
  if (!id) return;
  el.receiptResult.textContent = "Looking up…";
  try {
    const answer = await api(`/api/logs/${encodeURIComponent(id)}/status`);
    el.receiptResult.dataset.status = answer.status;
    const badge = node("span", `receipt-badge rs-${answer.status}`, answer.status.replace("_", " "));
    const parts = [badge];
    if (answer.reason) parts.push(node("span", "receipt-reason", answer.reason));
    if (answer.status === "stored") {
      const open = node("button", "btn btn-link", "Open");
      open.type = "button";
      open.addEventListener("click", async () => {
        try { openDetail(await api(`/api/logs/${encodeURIComponent(id)}`)); } catch (error) { showError(error); }
      });
      parts.push(open);
    }
    el.receiptResult.replaceChildren(...parts);
    el.receiptResult.title = answer.reason || answer.status;
  } catch (error) {
    if (error.status === 404) {
      el.receiptResult.dataset.status = "not_found";
      el.receiptResult.replaceChildren(node("span", "receipt-badge rs-not_found", "not found"));
      el.receiptResult.title = "No such id in this organization (never accepted, or its queued record expired)";
    } else if (error.status === 401 || error.status === 403) showError(error);
    else {
      el.receiptResult.dataset.status = "error";
      el.receiptResult.textContent = `${error.status || ""} ${error.code}: ${error.message}`;
    }
  }
}

// ---- wiring -------------------------------------------------------------------------------------------------------------

el.signinForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const key = el.signinKey.value.trim();
  if (!key) { el.signinError.textContent = "Paste an API key."; return; }
  sessionStorage.setItem(KEY_STORAGE, key);
  el.signinKey.value = "";
  el.signinError.textContent = "";
  setSignedIn(true);
  run({ push: false });
});

el.signout.addEventListener("click", () => signOut(""));

el.queryForm.addEventListener("submit", (e) => { e.preventDefault(); run(); });

for (const button of document.querySelectorAll(".level-toggle")) {
  button.addEventListener("click", () => {
    const level = button.dataset.level;
    if (state.levels.has(level)) state.levels.delete(level); else state.levels.add(level);
    if (state.levels.size === LEVELS.length) state.levels.clear(); // all pressed means no filter
    state.q = el.q.value; state.source = el.source.value;
    writeControls();
    run();
  });
}

for (const button of document.querySelectorAll(".range-preset")) {
  button.addEventListener("click", () => {
    state.range = { preset: button.dataset.range };
    el.from.value = ""; el.to.value = "";
    state.q = el.q.value; state.source = el.source.value;
    writeControls();
    run();
  });
}
for (const input of [el.from, el.to]) {
  input.addEventListener("change", () => {
    if (el.from.value && el.to.value) for (const b of document.querySelectorAll(".range-preset")) b.setAttribute("aria-pressed", "false");
  });
}

el.bannerDismiss.addEventListener("click", clearError);

el.body.addEventListener("click", (e) => {
  const row = e.target.closest("tr[data-event-id]");
  if (!row || window.getSelection().toString()) return; // selecting text is not opening
  const event = state.rows.find((r) => r.id === row.dataset.eventId);
  if (event) openDetail(event);
});

el.detailClose.addEventListener("click", () => closeDetail());
el.loadMore.addEventListener("click", loadMore);

new IntersectionObserver((entries) => {
  if (entries.some((entry) => entry.isIntersecting)) loadMore();
}, { root: el.scroll, rootMargin: "0px 0px 400px 0px" }).observe(el.end);

el.live.addEventListener("change", () => { if (el.live.checked) startTail(); else stopTail(); });
el.livePause.addEventListener("click", () => {
  state.tail.paused = !state.tail.paused;
  el.livePause.textContent = state.tail.paused ? "Resume" : "Pause";
  el.livePause.setAttribute("aria-pressed", String(state.tail.paused));
  el.liveStatus.textContent = state.tail.paused ? "Live · paused" : "Live";
  if (!state.tail.paused) scheduleTail(0);
});

el.wrap.addEventListener("change", () => {
  el.app.classList.toggle("wrap-lines", el.wrap.checked);
  localStorage.setItem("logpipe.explorer.wrap", el.wrap.checked ? "1" : "0");
});

el.receiptForm.addEventListener("submit", (e) => { e.preventDefault(); lookupReceipt(); });

function typing(target) {
  return target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

document.addEventListener("keydown", (e) => {
  if (el.app.classList.contains("is-signed-out") || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === "Escape") {
    if (typing(e.target)) { e.target.blur(); return; }
    if (!el.detail.hidden) { e.preventDefault(); closeDetail(); }
    return;
  }
  if (typing(e.target)) return;
  if (e.key === "/") { e.preventDefault(); el.q.focus(); el.q.select(); return; }
  if (e.key === "j" || e.key === "k") {
    if (!state.rows.length) return;
    e.preventDefault();
    let index = state.rows.findIndex((r) => r.id === state.selectedId);
    index = index < 0 ? 0 : Math.min(state.rows.length - 1, Math.max(0, index + (e.key === "j" ? 1 : -1)));
    select(state.rows[index].id, { scroll: true });
    el.scroll.focus({ preventScroll: true }); // Enter now acts on the selection, not on a focused button
    if (!el.detail.hidden) openDetail(state.rows[index]); // an open panel follows the selection
    if (e.key === "j" && index >= state.rows.length - 5) loadMore();
    return;
  }
  if (e.key === "Enter" && state.selectedId && !(e.target instanceof HTMLButtonElement)) {
    const event = state.rows.find((r) => r.id === state.selectedId);
    if (event) { e.preventDefault(); openDetail(event); }
  }
});

window.addEventListener("popstate", () => {
  if (!apiKey()) return;
  readUrl();
  if (!state.openId) closeDetail({ keepUrl: true });
  run({ push: false });
});

// ---- start --------------------------------------------------------------------------------------------------------------

$("time-header").textContent = `Time (${ZONE})`;
$("time-header").title = "Your time zone; hover a time for UTC";
el.wrap.checked = localStorage.getItem("logpipe.explorer.wrap") === "1";
el.app.classList.toggle("wrap-lines", el.wrap.checked);
readUrl();
if (apiKey()) { setSignedIn(true); run({ push: false }); } else setSignedIn(false);
window.__explorer = { ...(window.__explorer || {}), ready: true };
