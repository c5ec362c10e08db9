// The flags that mirror config keys, made from the config schema (`imagePath` → `--image-path`,
// its description and default), and the argv rewrite that lets users put the global ones before
// the subcommand (`ociregistry --config-file F serve`) as the seed project's users do.
import type { ArgDef, ArgsDef } from "citty";
import * as v from "valibot";
import { flagKeys, flagName, flagOf, keyDoc } from "../config/flags.ts";
import type { ConfigFlags } from "../config/resolve.ts";
import { entries, type ConfigKey } from "../config/schema.ts";
import type { FlagGroup } from "../config/values.ts";

/** A key's flag: a switch for a true/false key, a value otherwise; the help says the default. */
function argOf(key: ConfigKey): ArgDef {
  const f = flagOf(key)!;
  const d = keyDoc(entries[key]);
  const dflt = v.getDefault(entries[key] as never) as unknown;
  const plain = d.description!.replaceAll("`", "");
  const text = f.help ?? `${plain[0]!.toUpperCase()}${plain.slice(1)}`;
  const shown = d.default?.replaceAll("`", "") ?? (dflt === undefined || f.sets ? undefined : String(dflt));
  const description = shown === undefined || f.help ? text : `${text} (default: ${shown})`;
  return typeof dflt === "boolean" ? { type: "boolean", description } : { type: "string", description, valueHint: f.hint };
}

/** The flags of one group, by their command-line name (`image-path`). */
export function keyArgs(group: FlagGroup): ArgsDef {
  return Object.fromEntries(flagKeys(group).map((k) => [flagName(k).slice(2), argOf(k)]));
}

/** Flags every subcommand accepts. */
export const globalArgs = {
  "config-file": { type: "string", description: "YAML configuration file", valueHint: "FILE" },
  ...keyArgs("global"),
} as const satisfies ArgsDef;

/** The config flags among parsed args: each key whose flag was given, as typed. */
export function configFlags(args: Record<string, unknown>, groups: FlagGroup[]): ConfigFlags {
  const flags: ConfigFlags = { configFile: typeof args["config-file"] === "string" ? args["config-file"] : undefined };
  for (const key of (["global", ...groups] as FlagGroup[]).flatMap(flagKeys)) {
    const value = args[flagName(key).slice(2)];
    if (typeof value === "string" || typeof value === "boolean") flags[key] = value;
  }
  return flags;
}

const VALUE_FLAGS = new Set(Object.entries(globalArgs).filter(([, a]) => a.type === "string").map(([k]) => `--${k}`));
/** Subcommands that have subcommands of their own: global flags go after both words. */
const NESTED = new Set(["config"]);

/** Moves global flags that precede the subcommand (or come between `config` and `check`) to after it, where citty parses them. */
export function hoistGlobalFlags(argv: string[]): string[] {
  const flags: string[] = [];
  const words: string[] = [];
  let i = 0;
  const takeFlags = () => {
    while (i < argv.length && VALUE_FLAGS.has(argv[i]!.split("=")[0]!)) {
      flags.push(argv[i]!);
      if (!argv[i]!.includes("=") && i + 1 < argv.length) flags.push(argv[++i]!);
      i++;
    }
  };
  takeFlags();
  if (i < argv.length) words.push(argv[i++]!);
  if (NESTED.has(words[0]!)) {
    takeFlags();
    if (i < argv.length && !argv[i]!.startsWith("-")) words.push(argv[i++]!);
  }
  if (words.length === 0 || flags.length === 0) return argv;
  return [...words, ...flags, ...argv.slice(i)];
}
