// A configuration problem, reported with the key (or flag) it concerns.
export class ConfigError extends Error {
  constructor(readonly key: string, problem: string) {
    super(`${key}: ${problem}`);
    this.name = "ConfigError";
  }
}
