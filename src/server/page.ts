// The status page at `/`: one self-contained HTML page (no CDN, no build step, a strict CSP) that
// refreshes itself. With the admin API on it asks for the admin token (kept in the tab's
// sessionStorage only) and shows the cached images a page at a time, with search, pin, delete and
// a prune preview; without it, it shows aggregate figures and the listed upstreams only
// (upstreams clients named are counted, not named). The last hour is drawn as inline SVG charts.
import { PAGE_SCRIPT } from "./page-script.ts";

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

const CHART = (id: string, title: string) =>
  `<div class="chart"><small>${title}</small> <b id="${id}-total">–</b><svg id="${id}" viewBox="0 0 300 56" preserveAspectRatio="none" role="img" aria-label="${title}, last hour"><path d=""/></svg><div class="axis"><span>−60 min</span><span>now</span></div></div>`;

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>ociregistry</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2433;background:#f5f7fa}
header{background:#1d2433;color:#fff;padding:12px 24px;display:flex;gap:16px;align-items:baseline;flex-wrap:wrap}
header h1{font-size:18px;margin:0}header span{opacity:.75}
main{padding:16px 24px;max-width:1200px}
h2{font-size:16px;margin:18px 0 8px}
.cards,.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:12px;margin-bottom:16px}
.charts{grid-template-columns:repeat(auto-fill,minmax(260px,1fr))}
.card,.chart{background:#fff;border-radius:6px;padding:10px 14px;box-shadow:0 1px 2px #0002}
.card b{display:block;font-size:22px}.card small,.chart small{color:#5a6475}
.chart svg{display:block;width:100%;height:56px;background:#f0f3f8;margin-top:4px}.chart path{fill:#3367d6}
#chart-errors path{fill:#b3261e}#chart-hits path{fill:#137333}
.axis{display:flex;justify-content:space-between;font-size:11px;color:#5a6475}
.meter{height:8px;background:#e3e7ee;border-radius:4px;margin-top:6px;overflow:hidden}.meter div{height:100%;background:#3367d6}
.meter.high div{background:#b3261e}
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px #0002;margin-bottom:12px}
th,td{text-align:left;padding:5px 10px;border-bottom:1px solid #e3e7ee;font-variant-numeric:tabular-nums}
th{background:#eef1f6}.ok{color:#137333}.bad{color:#b3261e}.muted{color:#5a6475}
td button{font-size:12px;padding:1px 6px;margin-right:4px}
#airgap{background:#fff4ce;border:1px solid #e0c060;padding:8px 12px;border-radius:6px;margin-bottom:12px}
.tools{display:flex;gap:8px;align-items:center;margin-bottom:8px;flex-wrap:wrap}
.tools input{padding:4px 6px}#search{width:280px}
#login{background:#fff;padding:16px;border-radius:6px;max-width:420px;box-shadow:0 1px 2px #0002}
#login input{width:100%;padding:6px;margin:8px 0;box-sizing:border-box}
#err{color:#b3261e;margin-bottom:8px}#note{color:#137333;margin-bottom:8px}
</style></head>
<body data-admin="__ADMIN__">
<header><h1>ociregistry</h1><span id="version"></span><span id="uptime"></span><span id="updated"></span><span>all times UTC</span></header>
<main>
<div id="err" role="alert"></div><div id="note" role="status"></div>
<form id="login" hidden><label for="token">Admin token</label><input id="token" type="password" autocomplete="off"><button type="submit">Show status</button></form>
<section id="status" hidden>
<div id="airgap" hidden><b>Air-gapped:</b> upstreams are never contacted; only what the store holds is served.</div>
<div class="cards">
<div class="card"><small>cached images</small><b id="tags">–</b></div>
<div class="card"><small>store size</small><b id="bytes">–</b><div class="meter" id="usedmeter" hidden><div></div></div></div>
<div class="card"><small>free on disk</small><b id="free">–</b></div>
<div class="card"><small>blobs / manifests</small><b id="items">–</b></div>
<div class="card"><small>hit rate</small><b id="hitrate">–</b></div>
<div class="card"><small>downloads running</small><b id="inflight">–</b></div>
</div>
<h2>Last hour</h2>
<div class="charts">
${CHART("chart-requests", "requests")}
${CHART("chart-hits", "hit ratio")}
${CHART("chart-bytes", "bytes served")}
${CHART("chart-errors", "errors (5xx)")}
</div>
<h2>Upstreams</h2>
<table><thead><tr><th>upstream</th><th>scheme</th><th>auth</th><th>health</th><th>open requests</th><th>last error</th></tr></thead><tbody id="upstreams"></tbody></table>
<div id="imagesection" hidden><h2>Images</h2>
<div class="tools"><input id="search" type="search" placeholder="search upstream/repository:tag" aria-label="search images">
<button id="prev" type="button">‹ previous</button><button id="next" type="button">next ›</button><span id="range" class="muted"></span></div>
<table><thead><tr><th>image</th><th>tag</th><th>digest</th><th>size</th><th>last pulled</th><th>pinned</th><th></th></tr></thead><tbody id="images"></tbody></table>
<h2>Prune</h2>
<form id="prune" class="tools"><label for="olderthan">not pulled for</label><input id="olderthan" value="30d" size="6"><button type="submit">Preview prune</button><span id="pruneresult"></span></form>
</div>
</section>
</main>
<script>
${PAGE_SCRIPT}
</script>
</body></html>
`;
