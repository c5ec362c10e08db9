// A real S3 service for tests: a one-node Ceph cluster (one mon, one memstore OSD) and radosgw,
// all under a fresh temp dir with its own ceph.conf, on free loopback ports. Nothing is read from
// or written to /etc/ceph, and nothing of a previous run (processes, dirs, ports) is reused.
// RGW_TIMING=1 prints how long each start-up step took; RGW_KEEP=1 keeps the dir (logs) on stop.
import type { Subprocess } from "bun";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireTool, run, stopProcess, track, waitFor } from "./procs.ts";
import { createBucket, ok, s3Raw, type S3Credentials } from "./s3-raw.ts";

export interface Rgw extends S3Credentials {
  /** `http://127.0.0.1:PORT` */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  dir: string;
  /** Milliseconds from the call to startRgw until radosgw answered a signed request. */
  startMs: number;
  /** The PIDs of the mon, the OSD and radosgw. */
  pids: number[];
  /** Creates a bucket (a signed PUT /bucket: Bun.S3Client has no call for it). */
  createBucket(name: string): Promise<void>;
  /** Stops radosgw, the OSD and the mon, waits for them, and removes the temp dir. */
  stop(): Promise<void>;
}

const TOOLS = ["/usr/bin/monmaptool", "/usr/bin/ceph-mon", "/usr/bin/ceph-osd", "/usr/bin/python3", "/usr/bin/radosgw", "/usr/bin/radosgw-admin"];

/** Distinct free TCP ports on 127.0.0.1 (all held open at once so they differ). */
async function freePorts(n: number): Promise<number[]> {
  const held = Array.from({ length: n }, () => Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } }));
  const ports = held.map((l) => l.port);
  for (const l of held) l.stop(true);
  return ports;
}

function config(dir: string, fsid: string, monPort: number, rgwPort: number): string {
  // TESTING.md: each setting marked "mattered" was checked by leaving it out. Every path a daemon
  // would otherwise take under /var or /etc points into the temp dir.
  return `[global]
fsid = ${fsid}
mon_host = 127.0.0.1:${monPort}
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
# mattered: no cephx
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
# mattered: radosgw never answers otherwise
ms_mon_client_mode = crc secure
# mattered: one OSD
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
# mattered: ready in ~3 s instead of ~16 s
paxos_propose_interval = 0.01
run_dir = ${dir}/run
admin_socket = ${dir}/run/$name.asok
pid_file = ${dir}/run/$name.pid
log_file = ${dir}/log/$name.log
mon_cluster_log_file = default=${dir}/log/cluster.$channel.log cluster=${dir}/log/cluster.log
crash_dir = ${dir}/crash
keyring = ${dir}/keyring
mon_data = ${dir}/mon/$name
osd_data = ${dir}/osd/$name
osd_objectstore = memstore
[client.rgw]
rgw_frontends = beast port=${rgwPort} tcp_nodelay=1
rgw_data = ${dir}/rgw
`;
}

// librados's Python binding (python3-rados, a dependency of ceph-common) talks to the mon: the
// `ceph` CLI sends the same commands but takes ~1.5 s more to start and exit each time.
const PY_PRELUDE = `import json, os, sys, time, rados
c = rados.Rados(conffile=sys.argv[1])
c.connect(timeout=20)
def mon(cmd):
    r, out, err = c.mon_command(json.dumps(cmd), b"")
    if r != 0:
        sys.stderr.write(err); sys.stderr.flush(); os._exit(1)
    return out.decode()
`;

/** `ceph --conf CONF osd create`: the new OSD's id. */
async function osdCreate(conf: string): Promise<string> {
  const script = `${PY_PRELUDE}
sys.stdout.write(mon({"prefix": "osd create"})); sys.stdout.flush(); os._exit(0)`;
  return (await run(["/usr/bin/python3", "-c", script, conf])).stdout.trim();
}

/** Waits until the mon sees the OSD up (`ceph osd stat`), polling over one connection. */
async function osdUp(conf: string, isAlive: () => void): Promise<void> {
  const script = `${PY_PRELUDE}
while json.loads(mon({"prefix": "osd stat", "format": "json"}))["num_up_osds"] < 1:
    time.sleep(0.02)
os._exit(0)`;
  const p = track(Bun.spawn(["/usr/bin/python3", "-c", script, conf], { stdout: "ignore", stderr: "pipe" }));
  await waitFor("the OSD to be up", async () => {
    if (p.exitCode === null) isAlive();
    return p.exitCode === 0;
  }, 30_000).finally(() => p.kill("SIGKILL"));
}

export async function startRgw(): Promise<Rgw> {
  const t0 = performance.now();
  for (const t of TOOLS) requireTool(t);
  const dir = mkdtempSync(join(tmpdir(), "ocireg-rgw-"));
  for (const d of ["run", "log", "crash", "mon", "osd", "rgw"]) mkdirSync(join(dir, d));
  const [monPort, rgwPort] = (await freePorts(2)) as [number, number];
  const fsid = crypto.randomUUID();
  const conf = join(dir, "ceph.conf");
  writeFileSync(conf, config(dir, fsid, monPort, rgwPort));
  const creds: S3Credentials = {
    endpoint: `http://127.0.0.1:${rgwPort}`,
    accessKeyId: `K${crypto.randomUUID().replace(/-/g, "").slice(0, 19).toUpperCase()}`,
    secretAccessKey: crypto.randomUUID().replace(/-/g, ""),
    region: "us-east-1",
  };
  const procs: Subprocess[] = [];
  const marks: string[] = [];
  const mark = (what: string) => marks.push(`${what} ${Math.round(performance.now() - t0)}ms`);
  const daemon = (cmd: string[], name: string) => {
    const out = Bun.file(join(dir, "log", `${name}.out`));
    const p = track(Bun.spawn([...cmd, "--conf", conf], { stdout: out, stderr: out }));
    procs.push(p);
    return p;
  };
  const stop = async () => {
    // radosgw, then the OSD, then the mon (the reverse of their start): each leaves while the
    // daemons it talks to still answer (radosgw hangs on its way out when the OSD is gone).
    for (const p of [...procs].reverse()) await stopProcess(p);
    procs.length = 0;
    if (!process.env.RGW_KEEP) rmSync(dir, { recursive: true, force: true });
  };
  const logs = () => ["mon.a", "osd.0", "client.rgw"].map((n) => {
    const files = [join(dir, "log", `${n}.out`), join(dir, "log", `${n}.log`)].filter(existsSync);
    return files.map((f) => `--- ${f}\n${readFileSync(f, "utf8").split("\n").slice(-15).join("\n")}`).join("\n");
  }).join("\n");
  const exited = (p: Subprocess, name: string) => {
    if (p.exitCode !== null || p.signalCode !== null) throw new Error(`${name} exited (${p.exitCode ?? p.signalCode})`);
  };

  try {
    await run(["monmaptool", "--conf", conf, "--create", "--add", "a", `127.0.0.1:${monPort}`, "--fsid", fsid, join(dir, "monmap")]);
    mkdirSync(join(dir, "osd", "osd.0"));
    // Neither mkfs needs a running mon (the OSD's thanks to --no-mon-config): both at once.
    await Promise.all([
      run(["ceph-mon", "--conf", conf, "--mkfs", "-i", "a", "--monmap", join(dir, "monmap")]),
      run(["ceph-osd", "--conf", conf, "-i", "0", "--mkfs", "--osd-objectstore", "memstore", "--no-mon-config"]),
    ]);
    mark("mkfs");
    const mon = daemon(["ceph-mon", "-f", "-i", "a"], "mon.a");
    const id = await osdCreate(conf);
    if (id !== "0") throw new Error(`osd create gave osd.${id}, not osd.0`);
    mark("osd create");
    const osd = daemon(["ceph-osd", "-f", "-i", "0"], "osd.0");
    // Not radosgw before the OSD is up: pools created while no OSD is in the CRUSH map wait for
    // the mon's next tick (5 s) to get their placement groups.
    await osdUp(conf, () => {
      exited(mon, "ceph-mon");
      exited(osd, "ceph-osd");
    });
    mark("osd up");
    const rgw = daemon(["radosgw", "-f", "-n", "client.rgw"], "client.rgw");
    await waitFor("radosgw to answer HTTP", async () => {
      for (const [p, n] of [[mon, "ceph-mon"], [osd, "ceph-osd"], [rgw, "radosgw"]] as const) exited(p, n);
      return (await fetch(`${creds.endpoint}/`)).status === 200;
    }, 60_000);
    mark("radosgw http");
    await run(["radosgw-admin", "--conf", conf, "user", "create", "--uid", "test", "--display-name", "test",
      "--access-key", creds.accessKeyId, "--secret-key", creds.secretAccessKey]);
    mark("user");
    // Ready when a signed request works end to end: create a bucket, list it, delete it.
    const probe = `ready-${crypto.randomUUID().slice(0, 8)}`;
    let created = false;
    await waitFor("radosgw to answer a signed S3 request", async () => {
      if (!created) await createBucket(creds, probe);
      created = true;
      await ok(s3Raw(creds, "GET", probe, "", { query: { "list-type": "2" } }));
      return true;
    }, 30_000);
    await ok(s3Raw(creds, "DELETE", probe));
    mark("signed list");
  } catch (err) {
    const detail = `${(err as Error).message}\n${logs()}`;
    await stop().catch(() => {});
    throw new Error(`startRgw failed: ${detail}`);
  }
  const startMs = Math.round(performance.now() - t0);
  if (process.env.RGW_TIMING) console.error(`startRgw: ${marks.join(", ")}`);
  return {
    ...creds, dir, startMs, pids: procs.map((p) => p.pid),
    createBucket: (name) => createBucket(creds, name),
    stop,
  };
}
