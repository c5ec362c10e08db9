// Progress for long commands: one redrawn line on a terminal, nothing extra otherwise (the
// per-image log lines carry the story for logs and CI).
import type { PullProgress } from "../cache/pull-images.ts";

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

export function createProgressLine(stream: NodeJS.WriteStream = process.stderr) {
  const started = Date.now();
  let last: PullProgress | null = null;
  const draw = () => {
    if (!last) return;
    const secs = Math.max(0.001, (Date.now() - started) / 1000);
    stream.write(`\r\x1b[K${last.done + last.failed}/${last.total} images, ${formatBytes(last.bytes)} downloaded, ${formatBytes(last.bytes / secs)}/s${last.failed ? `, ${last.failed} failed` : ""}`);
  };
  const timer = stream.isTTY ? setInterval(draw, 200) : null;
  return {
    update(p: PullProgress) {
      last = { ...p };
    },
    /** Clears the line so log output is not interleaved with it. */
    clear() {
      if (stream.isTTY) stream.write("\r\x1b[K");
    },
    stop() {
      if (timer) clearInterval(timer);
      if (stream.isTTY) {
        draw();
        stream.write("\n");
      }
    },
  };
}
