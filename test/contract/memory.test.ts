// The store contract on the memory back-end.
import { createMemoryStore } from "../../src/store/memory.ts";
import { storeContract } from "./store-contract.ts";

storeContract("memory", async () => createMemoryStore());
