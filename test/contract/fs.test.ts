// The store contract on the directory back-end.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createFsStore } from "../../src/store/fs.ts";
import { storeContract } from "./store-contract.ts";

storeContract("directory", async () => {
  const store = createFsStore(mkdtempSync(join(tmpdir(), "ocireg-contract-")));
  await store.init();
  return store;
});
