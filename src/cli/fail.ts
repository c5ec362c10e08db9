// Prints a user-facing error and exits non-zero.
export function exitWithError(err: unknown): never {
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(`ociregistry: ${msg}\n`);
  process.exit(2);
}
