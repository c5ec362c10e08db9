// First step of `npm start` and `npm test` on a machine that has only Node and npm:
// installs Bun from npm when it is missing, then the project's dependencies.
import { execSync } from "node:child_process";

function has(cmd) {
  try {
    execSync(`command -v ${cmd}`, { stdio: "ignore", shell: "/bin/sh" });
    return true;
  } catch {
    return false;
  }
}

if (!has("bun")) {
  console.log("setup: Bun not found; installing it with npm (npm install -g bun)");
  try {
    execSync("npm install -g bun", { stdio: "inherit" });
  } catch {
    console.error("setup: `npm install -g bun` failed; run it as root, or set a user prefix first (npm config set prefix ~/.local) and put its bin on PATH");
    process.exit(1);
  }
  if (!has("bun")) {
    console.error("setup: bun was installed but is not on PATH; add `npm prefix -g`/bin to PATH and retry");
    process.exit(1);
  }
}
execSync("bun install --frozen-lockfile", { stdio: "inherit" });
