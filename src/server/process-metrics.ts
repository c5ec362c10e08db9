// The process metrics Prometheus' conventions name (CPU seconds, resident memory, open and maximum
// file descriptors, start time) and `ociregistry_build_info`, read at scrape time from the runtime
// and /proc. Not prom-client's collectDefaultMetrics (nor prom-client at all): that starts an
// event-loop-delay monitor and a GC observer on every process; these few reads are all a dashboard needs, and each one that a platform lacks (no /proc) is left out, not faked.
import { readdirSync, readFileSync } from "node:fs";
import { labelText, valueText, type MetricRegistry } from "./fast-metrics.ts";

type Reading = () => number | null;

function register(registry: MetricRegistry, name: string, help: string, type: "counter" | "gauge", read: Reading, labels: Record<string, string> = {}) {
  const series = name + labelText(Object.keys(labels), Object.values(labels));
  registry.family(name, help, type, () => {
    const value = read();
    return value === null ? [] : [`${series} ${valueText(value)}`];
  });
}

/** Null when the read throws (no /proc on this platform). */
const orNull = (f: () => number): number | null => {
  try {
    return f();
  } catch {
    return null;
  }
};

/** The soft limit on open files, from /proc/self/limits; null when unreadable or unlimited. */
function maxFds(): number | null {
  const n = orNull(() => {
    const line = readFileSync("/proc/self/limits", "utf8").split("\n").find((l) => l.startsWith("Max open files"));
    return Number(line?.split(/\s{2,}/)[1]);
  });
  return n !== null && Number.isFinite(n) ? n : null;
}

export function registerProcessMetrics(registry: MetricRegistry, version: string) {
  register(registry, "ociregistry_build_info", "1, labelled with the cache's version and the Bun runtime it was built with", "gauge", () => 1, { version, runtime: Bun.version });
  register(registry, "process_cpu_seconds_total", "User and system CPU time spent, in seconds", "counter", () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  });
  register(registry, "process_resident_memory_bytes", "Resident memory size in bytes", "gauge", () => process.memoryUsage.rss());
  register(registry, "process_open_fds", "Open file descriptors", "gauge", () => orNull(() => readdirSync("/proc/self/fd").length));
  register(registry, "process_max_fds", "The limit on open file descriptors", "gauge", maxFds);
  const start = (performance.timeOrigin || Date.now()) / 1000;
  register(registry, "process_start_time_seconds", "Start time of the process since the epoch, in seconds", "gauge", () => start);
}
