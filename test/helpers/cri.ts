// A CRI image client: the calls kubelet (and `crictl pull`) make to containerd's CRI plugin
// (runtime.v1.ImageService over its socket, gRPC via @grpc/grpc-js), so a test pulls the way a
// Kubernetes node does: the CRI plugin resolves hosts.toml from its own `config_path`.
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

export interface CriImage {
  /** The image id (its config digest). */
  id: string;
  repoTags: string[];
  /** `host/repo@sha256:…` with the manifest digest that was pulled. */
  repoDigests: string[];
}

export interface CriImages {
  /** PullImage; resolves to the image id. */
  pull(ref: string): Promise<string>;
  /** ImageStatus; null when the image is not there. */
  status(ref: string): Promise<CriImage | null>;
  remove(ref: string): Promise<void>;
  close(): void;
}

type Callback<T> = (err: grpc.ServiceError | null, res: T) => void;
interface ImageServiceClient extends grpc.Client {
  PullImage(req: object, opts: grpc.CallOptions, cb: Callback<{ image_ref: string }>): void;
  ImageStatus(req: object, opts: grpc.CallOptions, cb: Callback<{ image?: { id: string; repo_tags: string[]; repo_digests: string[] } }>): void;
  RemoveImage(req: object, opts: grpc.CallOptions, cb: Callback<object>): void;
}

const definition = protoLoader.loadSync(join(import.meta.dir, "cri.proto"), { keepCase: true, longs: String, defaults: true });
const ImageService = (grpc.loadPackageDefinition(definition) as any).runtime.v1.ImageService as new (
  target: string, creds: grpc.ChannelCredentials) => ImageServiceClient;

/** A client for the CRI image service on containerd's socket `address` (a path). */
export function criImages(address: string, timeoutMs = 60_000): CriImages {
  const client = new ImageService(`unix://${address}`, grpc.credentials.createInsecure());
  const call = <T>(what: string, fn: (opts: grpc.CallOptions, cb: Callback<T>) => void) =>
    new Promise<T>((resolve, reject) => fn({ deadline: Date.now() + timeoutMs }, (err, res) =>
      err ? reject(new Error(`CRI ${what}: ${err.details || err.message}`)) : resolve(res)));
  return {
    async pull(ref) {
      return (await call<{ image_ref: string }>(`PullImage ${ref}`, (o, cb) => client.PullImage({ image: { image: ref } }, o, cb))).image_ref;
    },
    async status(ref) {
      const res = await call<{ image?: { id: string; repo_tags: string[]; repo_digests: string[] } }>(`ImageStatus ${ref}`,
        (o, cb) => client.ImageStatus({ image: { image: ref } }, o, cb));
      return res.image ? { id: res.image.id, repoTags: res.image.repo_tags, repoDigests: res.image.repo_digests } : null;
    },
    async remove(ref) {
      await call(`RemoveImage ${ref}`, (o, cb) => client.RemoveImage({ image: { image: ref } }, o, cb));
    },
    close: () => client.close(),
  };
}
