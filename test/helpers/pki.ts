// A throwaway certificate authority with server and client certificates, made with openssl.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "./procs.ts";

export interface Pki {
  dir: string;
  ca: string;
  /** Server certificate for the given IPs / names. */
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

export async function makePki(hosts: string[]): Promise<Pki> {
  const dir = mkdtempSync(join(tmpdir(), "ocireg-pki-"));
  const p = (f: string) => join(dir, f);
  const ossl = (...args: string[]) => run(["openssl", ...args]);
  await ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
    "-subj", "/CN=ociregistry test CA", "-keyout", p("ca.key"), "-out", p("ca.crt"));
  const san = hosts.map((h) => (/^[\d.]+$|:/.test(h) ? `IP:${h}` : `DNS:${h}`)).join(",");
  writeFileSync(p("server.ext"), `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`);
  writeFileSync(p("client.ext"), `extendedKeyUsage=clientAuth\n`);
  for (const who of ["server", "client"]) {
    await ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", `/CN=${who}`,
      "-keyout", p(`${who}.key`), "-out", p(`${who}.csr`));
    await ossl("x509", "-req", "-in", p(`${who}.csr`), "-CA", p("ca.crt"), "-CAkey", p("ca.key"), "-CAcreateserial",
      "-days", "2", "-extfile", p(`${who}.ext`), "-out", p(`${who}.crt`));
  }
  return {
    dir, ca: p("ca.crt"), serverCert: p("server.crt"), serverKey: p("server.key"),
    clientCert: p("client.crt"), clientKey: p("client.key"),
  };
}
