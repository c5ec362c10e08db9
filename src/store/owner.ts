// Who owns a temp directory: this process, named by boot, PID and start time so that a reused
// PID (a restarted container is PID 1 again) or a reboot is never taken for the same process.
import { readFileSync } from "node:fs";

function read(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

/** Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat), or null. */
function startTicks(pid: number): string | null {
  const stat = read(`/proc/${pid}/stat`);
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ")".
  const rest = stat?.slice(stat.lastIndexOf(")") + 2).split(" ");
  return rest?.[19] ?? null;
}

function bootId(): string {
  return (read("/proc/sys/kernel/random/boot_id") ?? "noboot").trim().slice(0, 8);
}

let own: string | undefined;

/** `<boot>-<pid>-<start ticks>` of this process. */
export function processOwner(): string {
  own ??= `${bootId()}-${process.pid}-${startTicks(process.pid) ?? Date.now()}`;
  return own;
}

/** Whether the process that named a temp directory is certainly gone. Unknown names are kept. */
export function ownerIsGone(name: string): boolean {
  const m = name.match(/^([0-9a-z]+)-(\d+)-(\d+)$/);
  if (!m) return false;
  if (m[1] !== bootId()) return true;
  const ticks = startTicks(Number(m[2]));
  return ticks === null || ticks !== m[3];
}
