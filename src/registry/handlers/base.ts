// `GET /v2/`: the API version check every client pings first.
import { API_VERSION } from "./common.ts";

export function handleBase(method: string): Response {
  return new Response(method === "HEAD" ? null : "{}", {
    headers: { ...API_VERSION, "Content-Type": "application/json", "Content-Length": "2" },
  });
}
