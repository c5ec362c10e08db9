// The store contract on the directory driver.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fsDriver } from "../../src/store/fs.ts";
import { storeContract } from "./store-contract.ts";

storeContract("directory", async () => fsDriver(mkdtempSync(join(tmpdir(), "ocireg-contract-"))));
