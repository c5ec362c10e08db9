// The store contract on the memory driver.
import { memoryDriver } from "../../src/store/memory.ts";
import { storeContract } from "./store-contract.ts";

storeContract("memory", async () => memoryDriver());
