// The status page at `/`: one self-contained HTML page (no CDN, no build step) that refreshes
// itself. With the admin API on it asks for the admin token (kept in the tab's sessionStorage
// only) and shows the cached images; without it, it shows aggregate figures and the listed
// upstreams only (upstreams clients named are counted, not named).

export function statusPage(adminOn: boolean): Response {
  return new Response(PAGE.replace("__ADMIN__", adminOn ? "on" : "off"), {
    headers: {
      "Content-Type": "text/html; charset=utf-8",
      "Cache-Control": "no-store",
      "X-Content-Type-Options": "nosniff",
      "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
      "X-Frame-Options": "DENY",
      "Referrer-Policy": "no-referrer",
    },
  });
}

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>ociregistry</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2433;background:#f5f7fa}
header{background:#1d2433;color:#fff;padding:12px 24px;display:flex;gap:16px;align-items:baseline}
header h1{font-size:18px;margin:0}header span{opacity:.75}
main{padding:16px 24px;max-width:1200px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:12px;margin-bottom:20px}
.card{background:#fff;border-radius:6px;padding:10px 14px;box-shadow:0 1px 2px #0002}
.card b{display:block;font-size:22px}.card small{color:#5a6475}
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px #0002;margin-bottom:20px}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #e3e7ee;font-variant-numeric:tabular-nums}
th{background:#eef1f6}.ok{color:#137333}.bad{color:#b3261e}
#login{background:#fff;padding:16px;border-radius:6px;max-width:420px;box-shadow:0 1px 2px #0002}
#login input{width:100%;padding:6px;margin:8px 0;box-sizing:border-box}
#err{color:#b3261e;margin-bottom:8px}
</style></head>
<body data-admin="__ADMIN__">
<header><h1>ociregistry</h1><span id="version"></span><span id="uptime"></span><span id="updated"></span></header>
<main>
<div id="err" role="alert"></div>
<form id="login" hidden><label for="token">Admin token</label><input id="token" type="password" autocomplete="off"><button type="submit">Show status</button></form>
<section id="status" hidden>
<div class="cards">
<div class="card"><small>cached images</small><b id="tags">–</b></div>
<div class="card"><small>store size</small><b id="bytes">–</b></div>
<div class="card"><small>free on disk</small><b id="free">–</b></div>
<div class="card"><small>blobs / manifests</small><b id="items">–</b></div>
<div class="card"><small>hit rate</small><b id="hitrate">–</b></div>
<div class="card"><small>downloads running</small><b id="inflight">–</b></div>
</div>
<h2>Upstreams</h2>
<table><thead><tr><th>upstream</th><th>scheme</th><th>auth</th><th>health</th><th>open requests</th></tr></thead><tbody id="upstreams"></tbody></table>
<div id="imagesection" hidden><h2>Images</h2>
<table><thead><tr><th>image</th><th>tag</th><th>digest</th><th>size</th><th>last pulled</th></tr></thead><tbody id="images"></tbody></table></div>
</section>
</main>
<script>
"use strict";
const admin = document.body.dataset.admin === "on";
const $ = (id) => document.getElementById(id);
const fmt = (n) => { const u = ["B","KiB","MiB","GiB","TiB"]; let i = 0; while (n >= 1024 && i < 4) { n /= 1024; i++; } return (i ? n.toFixed(1) : n) + " " + u[i]; };
function cell(row, text, cls) { const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; row.appendChild(td); }
function rows(id, items, fill) { const body = $(id); body.replaceChildren(); for (const it of items) { const tr = document.createElement("tr"); fill(tr, it); body.appendChild(tr); } }
async function get(url) {
  const headers = admin ? { Authorization: "Bearer " + sessionStorage.getItem("ociregistry-token") } : {};
  const r = await fetch(url, { headers, cache: "no-store" });
  if (r.status === 401) throw Object.assign(new Error("the admin token was refused"), { login: true });
  if (!r.ok) throw new Error(url + ": HTTP " + r.status);
  return r.json();
}
function show(s) {
  $("version").textContent = "v" + s.version;
  $("uptime").textContent = "up " + Math.round(s.uptimeSeconds) + " s";
  $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  $("tags").textContent = s.store.tags;
  $("bytes").textContent = fmt(s.store.bytes) + (s.store.maxBytes ? " of " + fmt(s.store.maxBytes) : "") + (s.store.full ? " (full: pass-through)" : "");
  $("free").textContent = s.store.freeBytes === null ? "–" : fmt(s.store.freeBytes) + (s.store.minFreeBytes ? " (keeps " + fmt(s.store.minFreeBytes) + ")" : "");
  $("items").textContent = s.store.blobs + " / " + s.store.manifests;
  $("hitrate").textContent = s.cache.hitRate === null ? "–" : Math.round(s.cache.hitRate * 100) + " %";
  $("inflight").textContent = s.cache.downloadsInFlight;
  const health = (u) => u.circuit === "closed" ? "healthy" : u.circuit === "open" ? "failing, retry in " + Math.ceil(u.retryInMs / 1000) + " s" : "probing";
  const ups = s.upstreams.map((u) => ({ ...u, health: health(u) }));
  // The public figures count the upstreams clients named instead of naming them.
  const o = s.otherUpstreams;
  if (o && (o.circuitsOpen || o.activeRequests)) ups.push({ name: "other (named by clients)", scheme: "", auth: "", circuit: o.circuitsOpen ? "open" : "closed", health: o.circuitsOpen ? o.circuitsOpen + " failing" : "healthy", activeRequests: o.activeRequests });
  rows("upstreams", ups, (tr, u) => { cell(tr, u.name); cell(tr, u.scheme); cell(tr, u.auth); cell(tr, u.health, u.circuit === "closed" ? "ok" : "bad"); cell(tr, u.activeRequests); });
}
async function refresh() {
  try {
    if (admin && !sessionStorage.getItem("ociregistry-token")) { $("login").hidden = false; return; }
    show(await get(admin ? "/api/v1/status" : "/status.json"));
    if (admin) {
      const images = await get("/api/v1/images");
      $("imagesection").hidden = false;
      rows("images", images, (tr, i) => { cell(tr, i.image); cell(tr, i.tag); cell(tr, i.digest.slice(7, 19)); cell(tr, fmt(i.size)); cell(tr, i.lastPulled.replace(/\\.\\d+Z$/, "Z")); });
    }
    $("login").hidden = true;
    $("status").hidden = false;
    $("err").textContent = "";
  } catch (e) {
    if (e.login) { sessionStorage.removeItem("ociregistry-token"); $("login").hidden = false; $("status").hidden = true; }
    $("err").textContent = e.message;
  }
}
$("login").addEventListener("submit", (ev) => { ev.preventDefault(); sessionStorage.setItem("ociregistry-token", $("token").value); $("err").textContent = ""; refresh(); });
refresh();
setInterval(refresh, 3000);
</script>
</body></html>
`;
