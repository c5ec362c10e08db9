// The registry's error type lives in oci/ so the cache can throw it too; re-exported here for
// the HTTP layer.
export { ERROR_CODES, RegistryError, type ErrorCode } from "../oci/errors.ts";
