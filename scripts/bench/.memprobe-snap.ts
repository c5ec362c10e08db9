// Probe build that writes a V8-format heap snapshot to SNAP_FILE on SIGUSR1 (after a full GC).
import { writeFileSync } from "node:fs";
process.on("SIGUSR1", () => {
  Bun.gc(true);
  writeFileSync(process.env.SNAP_FILE ?? "/tmp/ocireg.heapsnapshot", Bun.generateHeapSnapshot("v8"));
});
await import("./.memprobe-app.ts");
