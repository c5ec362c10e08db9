// The command-line flags that mirror config keys, read from the schema's key documentation:
// `imagePath` is `--image-path`, and which commands take it is the key's flag group.
import * as v from "valibot";
import { entries, type ConfigKey } from "./schema.ts";
import type { FlagGroup, KeyDoc } from "./values.ts";

export type FlagDoc = NonNullable<KeyDoc["flag"]>;

/** The key's documentation (description, table default, flag), from its schema's pipe. */
export function keyDoc(schema: v.GenericSchema): { description?: string } & KeyDoc {
  const s = schema as v.GenericSchema & { pipe?: unknown[] };
  return { description: v.getDescription(s as never), ...(v.getMetadata(s as never) as KeyDoc) };
}

export function flagOf(key: ConfigKey): FlagDoc | undefined {
  return keyDoc(entries[key]).flag;
}

/** `imagePath` → `--image-path`. */
export function flagName(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** The keys whose flags the commands of `group` take, in the schema's order. */
export function flagKeys(group: FlagGroup): ConfigKey[] {
  return (Object.keys(entries) as ConfigKey[]).filter((k) => flagOf(k)?.group === group);
}
