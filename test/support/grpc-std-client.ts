// Clients built the ordinary way, from the .proto files with proto-loader + protobufjs, as any grpc-js
// user would. Talking to a node through them checks that the hand-written codecs speak real protobuf.

import {
  type Client,
  credentials,
  type GrpcObject,
  loadPackageDefinition,
  Metadata,
  type ServiceClientConstructor,
  type ServiceError,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { PROTO_DIR, PROTO_FILES } from '../../src/grpc/index.js';

const loaderOpts = { keepCase: true, longs: Number, enums: String, defaults: false } as const;

function service(pkg: GrpcObject, path: string): ServiceClientConstructor {
  let o: unknown = pkg;
  for (const part of path.split('.')) o = (o as GrpcObject)[part];
  return o as ServiceClientConstructor;
}

function load(files: string[], dir: string): GrpcObject {
  return loadPackageDefinition(loadSync(files, { ...loaderOpts, includeDirs: [dir] }));
}

const ours = load(PROTO_FILES, PROTO_DIR);
export const GroupCacheClient = service(ours, 'groupcachepb.GroupCache');
export const GossipCacheClient = service(ours, 'gossipcachepb.GossipCache');

const nm = new URL('../../node_modules/', import.meta.url).pathname;
export const HealthClient = service(
  load(['health/v1/health.proto'], `${nm}grpc-health-check/proto/`),
  'grpc.health.v1.Health',
);
export const ReflectionClient = service(
  load(['grpc/reflection/v1/reflection.proto'], `${nm}@grpc/reflection/build/proto/`),
  'grpc.reflection.v1.ServerReflection',
);

export const insecure = credentials.createInsecure();

/** A unary call as a promise: resolves with the response, rejects with the grpc ServiceError. */
export function unary<T>(
  client: Client,
  method: string,
  req: object,
  opts: { deadlineMs?: number; metadata?: Metadata; signal?: AbortSignal } = {},
): Promise<T> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, (...args: unknown[]) => { cancel(): void }>)[method];
    const c = fn.call(
      client,
      req,
      opts.metadata ?? new Metadata(),
      { deadline: Date.now() + (opts.deadlineMs ?? 10_000) },
      (err: ServiceError | null, res: T) => (err ? reject(err) : resolve(res)),
    );
    opts.signal?.addEventListener('abort', () => c.cancel(), { once: true });
  });
}

/** Metadata that marks a unary Get as a peer's fill. */
export function peerMetadata(): Metadata {
  const md = new Metadata();
  md.set('gossipcache-peer', '1');
  return md;
}
