// The resolved configuration as `config check` prints it: secrets replaced by a mask, PEM files
// by their size, so the output can be pasted into a ticket.
import type { Config, Credentials, RegistryTls } from "./schema.ts";

export const MASK = "********";

const pem = (text: string | undefined) => (text === undefined ? undefined : `(PEM, ${Buffer.byteLength(text)} bytes)`);
const auth = (a: Credentials | undefined) => a && { user: a.user, password: MASK };
const tls = (t: RegistryTls | undefined) => t && { ...t, ca: pem(t.ca), cert: pem(t.cert), key: t.key === undefined ? undefined : MASK };

/** A copy of the config without passwords, tokens, secret keys or private keys. */
export function maskedConfig(cfg: Config): Record<string, unknown> {
  const out: Record<string, unknown> = {
    ...cfg,
    registries: cfg.registries.map((r) => ({
      ...r, auth: auth(r.auth), tls: tls(r.tls),
      endpoints: r.endpoints?.map((e) => ({ ...e, auth: auth(e.auth), tls: tls(e.tls) })),
    })),
    users: cfg.users.map((u) => ({ user: u.user, password: MASK })),
    adminToken: cfg.adminToken === undefined ? undefined : MASK,
    s3: cfg.s3 && { ...cfg.s3, secretAccessKey: MASK },
    replicas: cfg.replicas && { ...cfg.replicas, secret: MASK },
    serverTlsConfig: cfg.serverTlsConfig && { ...cfg.serverTlsConfig, cert: pem(cfg.serverTlsConfig.cert), ca: pem(cfg.serverTlsConfig.ca), key: MASK },
  };
  return JSON.parse(JSON.stringify(out)) as Record<string, unknown>;
}
