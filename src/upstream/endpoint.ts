// Where an upstream namespace is served: Docker Hub's namespace lives on another host.

/** The host:port to connect to for an upstream namespace. */
export function upstreamEndpoint(upstream: string): string {
  return upstream === "docker.io" ? "registry-1.docker.io" : upstream;
}
