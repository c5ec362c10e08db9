// Probe build of the cache for memory work: SIGUSR2 prints heap and RSS to PROBE_LOG, then again
// after Bun.gc(true), after Bun.shrink() and 10 s later.
import { heapStats, memoryUsage } from "bun:jsc";
import { appendFileSync } from "node:fs";
const mib = (n: number) => (n / 1048576).toFixed(1);
const out = process.env.PROBE_LOG ?? "/dev/stderr";
function report(tag: string) {
  const m = process.memoryUsage();
  const h = heapStats();
  const top = Object.entries(h.objectTypeCounts).sort((a, b) => b[1] - a[1]).slice(0, 10).map(([k, v]) => `${k}=${v}`).join(",");
  appendFileSync(out, `HEAP ${tag} rss=${mib(m.rss)} heapSize=${mib(h.heapSize)} heapCap=${mib(h.heapCapacity)} extra=${mib(h.extraMemorySize)} objects=${h.objectCount} jscmem=${JSON.stringify(memoryUsage())} top=${top}\n`);
}
process.on("SIGUSR2", () => {
  report("now");
  Bun.gc(true);
  setTimeout(() => {
    report("after-gc-1s");
    Bun.shrink();
    setTimeout(() => report("after-shrink-1s"), 1000);
    setTimeout(() => report("after-shrink-10s"), 10000);
  }, 1000);
});
await import("../../src/cli/main.ts");
