// containerd's config.toml: the CRI plugin reads certs.d only where `config_path` points. Version 2
// (containerd 1.6/1.7) and version 3 (containerd 2.x) name the plugin differently.
import { NodeConfigRefused, readIfFile, type Change } from "./changes.ts";
import { findBlock, parseToml, renderBlock } from "./markers.ts";

export const DEFAULT_CONTAINERD_CONFIG = "/etc/containerd/config.toml";
const PLUGIN = { 2: "io.containerd.grpc.v1.cri", 3: "io.containerd.cri.v1.images" } as const;
type Version = keyof typeof PLUGIN;

const header = (v: Version) => `[plugins.${JSON.stringify(PLUGIN[v])}.registry]`;

/** The lines a config of version `v` needs for containerd to read `dir`. */
export function configPathSnippet(v: Version, dir: string): string {
  return `${header(v)}\n  config_path = ${JSON.stringify(dir)}\n`;
}

function versionOf(path: string, parsed: Record<string, unknown>): Version {
  const v = parsed.version ?? 1;
  if (v === 2 || v === 3) return v;
  throw new NodeConfigRefused(path, `uses config version ${String(v)}; configure-node knows versions 2 (containerd 1.6/1.7) and 3 (containerd 2.x): convert it (containerd config default shows the layout) and run again`);
}

function registryOf(parsed: Record<string, unknown>, v: Version): Record<string, unknown> | undefined {
  const plugins = parsed.plugins as Record<string, Record<string, unknown>> | undefined;
  return plugins?.[PLUGIN[v]]?.registry as Record<string, unknown> | undefined;
}

function pathsOf(registry: Record<string, unknown> | undefined): string[] {
  const p = registry?.config_path;
  return typeof p === "string" && p !== "" ? p.split(":") : [];
}

/** What to tell the operator when containerd does not read `dir` (null when it does). */
export function configPathAdvice(path: string, dir: string): string | null {
  const text = readIfFile(path);
  if (text === null) {
    return `${path} does not exist. containerd 2.x reads /etc/containerd/certs.d without it${dir === "/etc/containerd/certs.d" ? " (nothing to do there)" : `, not ${dir}`}; ` +
      `containerd 1.6/1.7 reads hosts.toml files only with this in ${path} (then restart containerd; or run with --containerd-config ${path}):\n` +
      `version = 2\n${configPathSnippet(2, dir)}\ncontainerd 2.x with a config file (version 3):\n${configPathSnippet(3, dir)}`;
  }
  const parsed = parseToml(path, text);
  const v = versionOf(path, parsed);
  if (pathsOf(registryOf(parsed, v)).includes(dir)) return null;
  return `containerd does not read ${dir} yet: add this to ${path} (config version ${v}) and restart containerd, or run with --containerd-config ${path}:\n${configPathSnippet(v, dir)}`;
}

/** The changes that make containerd's config point `config_path` at `dir`. */
export function planContainerdConfig(path: string, dir: string): Change[] {
  const text = readIfFile(path);
  const found = text === null ? null : findBlock(path, text);
  const base = found ? found.rest : text;
  let next: string;
  if (base === null || (found?.created.file && base === "")) {
    next = renderBlock(`version = 2\n\n${configPathSnippet(2, dir)}`, { file: true, directory: false });
  } else {
    const parsed = parseToml(path, base);
    const v = versionOf(path, parsed);
    const registry = registryOf(parsed, v);
    const paths = pathsOf(registry);
    if (paths.includes(dir)) next = base;
    else {
      if (paths.length) throw new NodeConfigRefused(path, `sets config_path = "${paths.join(":")}"; add ${dir} to it (paths are separated by ":") or give --containerd-dir ${paths[0]}`);
      if (registry?.mirrors !== undefined || registry?.configs !== undefined) {
        throw new NodeConfigRefused(path, "sets registry.mirrors or registry.configs, which containerd refuses together with config_path: move them to hosts.toml files first");
      }
      const { at, inTable } = afterHeader(base, v);
      if (!inTable && base !== "" && !base.endsWith("\n")) throw new NodeConfigRefused(path, "does not end with a newline; add one so configure-node can append its block");
      // Inside an existing [..registry] table only the key goes in; otherwise the table too.
      const body = inTable ? `  config_path = ${JSON.stringify(dir)}\n` : configPathSnippet(v, dir);
      next = base.slice(0, at) + renderBlock(body, { file: false, directory: false }) + base.slice(at);
      if (!pathsOf(registryOf(parseToml(path, next), v)).includes(dir)) {
        throw new NodeConfigRefused(path, `configure-node cannot set config_path in this layout; add it by hand and restart containerd:\n${configPathSnippet(v, dir)}`);
      }
    }
  }
  return next === text ? [] : [{ kind: "write", path, content: next }];
}

/** Just after the registry table's header line when the file has one, else the end of the file. */
function afterHeader(text: string, v: Version): { at: number; inTable: boolean } {
  const want = header(v);
  let offset = 0;
  for (const line of text.split(/(?<=\n)/)) {
    offset += line.length;
    if (line.replace(/\s+/g, "") === want && line.endsWith("\n")) return { at: offset, inTable: true };
  }
  return { at: text.length, inTable: false };
}

export function planRemoveContainerdConfig(path: string): Change[] {
  const text = readIfFile(path);
  const found = text === null ? null : findBlock(path, text);
  if (!found) return [];
  return [found.created.file && found.rest === "" ? { kind: "delete", path } : { kind: "write", path, content: found.rest }];
}
