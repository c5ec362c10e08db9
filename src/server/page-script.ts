// The status page's script (page.ts holds the HTML): every 3 s it reads the status figures and,
// with the admin token, one page of images (never the whole list); it draws the last hour as SVG
// bars and sends the admin actions (pin, unpin, delete, prune preview). Plain ES2020 in a raw
// string: no backticks and no dollar-brace inside, so the page needs no build step.
export const PAGE_SCRIPT = String.raw`"use strict";
const admin = document.body.dataset.admin === "on";
const PAGE = 50;
const $ = (id) => document.getElementById(id);
const fmt = (n) => { const u = ["B","KiB","MiB","GiB","TiB"]; let i = 0; while (n >= 1024 && i < 4) { n /= 1024; i++; } return (i ? n.toFixed(1) : n) + " " + u[i]; };
const utc = (iso) => iso ? iso.replace(/\.\d+Z$/, "Z") : "";
const sum = (a) => a.reduce((n, v) => n + v, 0);
// Images: the search, the cursor of the page shown, and the cursors of the pages before it.
const view = { q: "", cursor: "", back: [], next: null };
function cell(row, text, cls) { const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; row.appendChild(td); return td; }
function rows(id, items, fill) { const body = $(id); body.replaceChildren(); for (const it of items) { const tr = document.createElement("tr"); fill(tr, it); body.appendChild(tr); } }
function token() { return sessionStorage.getItem("ociregistry-token"); }
async function call(url, init) {
  const headers = admin ? { Authorization: "Bearer " + token() } : {};
  if (init && init.body) headers["Content-Type"] = "application/json";
  const r = await fetch(url, Object.assign({ headers: headers, cache: "no-store" }, init || {}));
  if (r.status === 401) throw Object.assign(new Error("the admin token was refused"), { login: true });
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new Error(url.split("?")[0] + ": " + (body && body.error ? body.error : "HTTP " + r.status));
  return body;
}
/** Bars of one series over the last hour, right-aligned: one slot per 10 s sample. */
function chart(id, values, max) {
  const W = 300, H = 56, n = 361, w = W / n;
  const top = max || Math.max(1, ...values.filter((v) => v !== null));
  let d = "";
  values.forEach((v, i) => {
    if (!v) return;
    const h = Math.max(1, v / top * (H - 2));
    d += "M" + ((n - values.length + i) * w).toFixed(2) + " " + H + "v" + (-h).toFixed(1) + "h" + w.toFixed(2) + "v" + h.toFixed(1) + "z";
  });
  $(id).firstElementChild.setAttribute("d", d);
}
function drawHistory(h) {
  if (!h) return;
  const ratio = h.hits.map((x, i) => (x + h.misses[i] ? x / (x + h.misses[i]) : null));
  chart("chart-requests", h.requests);
  chart("chart-hits", ratio, 1);
  chart("chart-bytes", h.bytes);
  chart("chart-errors", h.errors);
  const hits = sum(h.hits), looked = hits + sum(h.misses);
  $("chart-requests-total").textContent = sum(h.requests);
  $("chart-hits-total").textContent = looked ? Math.round(hits / looked * 100) + " %" : "–";
  $("chart-bytes-total").textContent = fmt(sum(h.bytes));
  $("chart-errors-total").textContent = sum(h.errors);
}
function health(u, airGapped) {
  if (airGapped) return "air-gapped (not contacted)";
  return u.circuit === "closed" ? "healthy" : u.circuit === "open" ? "failing, retry in " + Math.ceil(u.retryInMs / 1000) + " s" : "probing";
}
function show(s) {
  $("version").textContent = "v" + s.version;
  $("uptime").textContent = "up " + Math.round(s.uptimeSeconds) + " s";
  $("updated").textContent = "updated " + new Date().toISOString().slice(11, 19);
  $("airgap").hidden = !s.airGapped;
  const st = s.store;
  $("tags").textContent = st.tags;
  $("bytes").textContent = fmt(st.bytes) + (st.maxBytes ? " of " + fmt(st.maxBytes) : "") + (st.full ? " (full: pass-through)" : "");
  const meter = $("usedmeter");
  meter.hidden = !st.maxBytes;
  if (st.maxBytes) {
    const share = Math.min(1, st.bytes / st.maxBytes);
    meter.firstElementChild.style.width = (share * 100).toFixed(1) + "%";
    meter.className = share > 0.9 ? "meter high" : "meter";
  }
  $("free").textContent = st.freeBytes === null || st.freeBytes === undefined ? "–" : fmt(st.freeBytes) + (st.minFreeBytes ? " (keeps " + fmt(st.minFreeBytes) + ")" : "");
  $("items").textContent = st.blobs + " / " + st.manifests;
  $("hitrate").textContent = s.cache.hitRate === null ? "–" : Math.round(s.cache.hitRate * 100) + " %";
  $("inflight").textContent = s.cache.downloadsInFlight;
  drawHistory(s.history);
  const ups = s.upstreams.map((u) => Object.assign({}, u, { health: health(u, s.airGapped) }));
  // The public figures count the upstreams clients named instead of naming them.
  const o = s.otherUpstreams;
  if (o && (o.circuitsOpen || o.activeRequests)) ups.push({ name: "other (named by clients)", scheme: "", auth: "", circuit: o.circuitsOpen ? "open" : "closed", health: o.circuitsOpen ? o.circuitsOpen + " failing" : "healthy", activeRequests: o.activeRequests, lastError: null });
  rows("upstreams", ups, (tr, u) => {
    cell(tr, u.name); cell(tr, u.scheme); cell(tr, u.auth);
    cell(tr, u.health, s.airGapped ? "muted" : u.circuit === "closed" ? "ok" : "bad"); cell(tr, u.activeRequests);
    cell(tr, u.lastError ? utc(u.lastError.at) + " " + u.lastError.error : "–", u.lastError ? "bad" : "muted");
  });
}
function refOf(i) { return i.tag === "<none>" ? i.image + "@" + i.digest : i.image + ":" + i.tag; }
function path(ref) { return ref.split("/").map(encodeURIComponent).join("/"); }
async function act(what, method, url, body) {
  try {
    const r = await call(url, { method: method, body: body ? JSON.stringify(body) : undefined });
    $("note").textContent = what; $("err").textContent = "";
    return r;
  } catch (e) { $("err").textContent = e.message; return null; }
}
function button(td, label, onclick) { const b = document.createElement("button"); b.type = "button"; b.textContent = label; b.addEventListener("click", () => onclick(b)); td.appendChild(b); return b; }
function showImages(page) {
  $("imagesection").hidden = false;
  view.next = page.next;
  const first = view.back.length * PAGE;
  $("range").textContent = page.images.length ? (first + 1) + "–" + (first + page.images.length) + " of " + page.total : "no images" + (view.q ? " match" : "");
  $("prev").disabled = !view.back.length;
  $("next").disabled = !page.next;
  rows("images", page.images, (tr, i) => {
    const ref = refOf(i);
    cell(tr, i.image); cell(tr, i.tag); cell(tr, i.digest.slice(7, 19)); cell(tr, fmt(i.size)); cell(tr, utc(i.lastPulled)); cell(tr, i.pinned ? "pinned" : "");
    const td = cell(tr, "");
    button(td, i.pinned ? "unpin" : "pin", async () => { await act((i.pinned ? "unpinned " : "pinned ") + ref, i.pinned ? "DELETE" : "PUT", "/api/v1/pins/" + path(ref)); refresh(); });
    // Two clicks: the first asks, the second deletes.
    button(td, "delete", async (b) => {
      if (b.dataset.armed !== "1") { b.dataset.armed = "1"; b.textContent = "confirm delete"; return; }
      const r = await act("deleted " + ref, "DELETE", "/api/v1/images/" + path(ref));
      if (r) $("note").textContent = "deleted " + ref + " (" + fmt(r.bytes) + " freed)";
      refresh();
    });
  });
}
async function loadImages() {
  const p = new URLSearchParams({ limit: String(PAGE) });
  if (view.cursor) p.set("cursor", view.cursor);
  if (view.q) p.set("q", view.q);
  showImages(await call("/api/v1/images?" + p));
}
let busy = false;
async function refresh() {
  if (busy) return;
  busy = true;
  try {
    if (admin && !token()) { $("login").hidden = false; return; }
    show(await call(admin ? "/api/v1/status" : "/status.json"));
    if (admin) await loadImages();
    $("login").hidden = true;
    $("status").hidden = false;
    $("err").textContent = "";
  } catch (e) {
    if (e.login) { sessionStorage.removeItem("ociregistry-token"); $("login").hidden = false; $("status").hidden = true; }
    $("err").textContent = e.message;
  } finally { busy = false; }
}
$("login").addEventListener("submit", (ev) => { ev.preventDefault(); sessionStorage.setItem("ociregistry-token", $("token").value); $("err").textContent = ""; refresh(); });
let typing = 0;
$("search").addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(() => { view.q = $("search").value.trim(); view.cursor = ""; view.back = []; refresh(); }, 250); });
$("next").addEventListener("click", () => { if (!view.next) return; view.back.push(view.cursor); view.cursor = view.next; refresh(); });
$("prev").addEventListener("click", () => { if (!view.back.length) return; view.cursor = view.back.pop(); refresh(); });
$("prune").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const r = await act("", "POST", "/api/v1/prune", { olderThan: $("olderthan").value.trim(), dryRun: true });
  if (!r) return;
  const names = r.images.slice(0, 10).join(", ") + (r.images.length > 10 ? ", …" : "");
  $("pruneresult").textContent = "would remove " + r.images.length + " image(s), " + r.blobs + " blob(s), " + fmt(r.bytes) + (names ? ": " + names : "");
});
refresh();
setInterval(refresh, 3000);
`;
