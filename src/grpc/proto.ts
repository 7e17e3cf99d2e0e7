// The two services as grpc-js service definitions with the hand-written codecs of codec.ts, plus the
// .proto files themselves (for server reflection and for clients in other languages).

import { fileURLToPath } from 'node:url';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { loadSync, type PackageDefinition } from '@grpc/proto-loader';
import {
  decodeEmpty,
  decodeFetchBatch,
  decodeFetchReplyBatch,
  decodeGetResponse,
  decodeKeyRequest,
  decodePushRequest,
  decodePushResponse,
  decodeSetRequest,
  encodeEmpty,
  encodeFetchBatch,
  encodeFetchReplyBatch,
  encodeGetResponse,
  encodeKeyRequest,
  encodePushRequest,
  encodePushResponse,
  encodeSetRequest,
  type FetchReply,
  type FetchRequest,
  type GetResponse,
  type KeyRequest,
  type PushRequest,
  type PushResponse,
  type SetRequest,
} from './codec.js';

/** Directory holding groupcache.proto and gossipcache.proto (shipped in the package). */
export const PROTO_DIR = fileURLToPath(new URL('../../proto/', import.meta.url));
export const PROTO_FILES = ['groupcache.proto', 'gossipcache.proto'];

export const GROUPCACHE_SERVICE = 'groupcachepb.GroupCache';
export const GOSSIPCACHE_SERVICE = 'gossipcachepb.GossipCache';
export const GET_PATH = `/${GROUPCACHE_SERVICE}/Get`;
export const FETCH_PATH = `/${GOSSIPCACHE_SERVICE}/Fetch`;
export const REMOVE_PATH = `/${GOSSIPCACHE_SERVICE}/Remove`;
export const SET_PATH = `/${GOSSIPCACHE_SERVICE}/Set`;
export const PUSH_PATH = `/${GOSSIPCACHE_SERVICE}/Push`;

/** groupcachepb.GroupCache: the groupcache-compatible unary Get. */
export const groupCacheService: ServiceDefinition = {
  Get: {
    path: GET_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: (r: KeyRequest) => encodeKeyRequest(r),
    requestDeserialize: decodeKeyRequest,
    responseSerialize: (r: GetResponse) => encodeGetResponse(r),
    responseDeserialize: decodeGetResponse,
    originalName: 'get',
  },
};

/** gossipcachepb.GossipCache: the peer stream, Remove, Set and Push. */
export const gossipCacheService: ServiceDefinition = {
  Fetch: {
    path: FETCH_PATH,
    requestStream: true,
    responseStream: true,
    requestSerialize: (b: FetchRequest[]) => encodeFetchBatch(b),
    requestDeserialize: decodeFetchBatch,
    responseSerialize: (b: FetchReply[]) => encodeFetchReplyBatch(b),
    responseDeserialize: decodeFetchReplyBatch,
    originalName: 'fetch',
  },
  Remove: {
    path: REMOVE_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: (r: KeyRequest) => encodeKeyRequest(r),
    requestDeserialize: decodeKeyRequest,
    responseSerialize: encodeEmpty,
    responseDeserialize: decodeEmpty,
    originalName: 'remove',
  },
  Set: {
    path: SET_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: (r: SetRequest) => encodeSetRequest(r),
    requestDeserialize: decodeSetRequest,
    responseSerialize: encodeEmpty,
    responseDeserialize: decodeEmpty,
    originalName: 'set',
  },
  Push: {
    path: PUSH_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: (r: PushRequest) => encodePushRequest(r),
    requestDeserialize: decodePushRequest,
    responseSerialize: (r: PushResponse) => encodePushResponse(r),
    responseDeserialize: decodePushResponse,
    originalName: 'push',
  },
};

let packageDefinition: PackageDefinition | undefined;

/** Both .proto files parsed by proto-loader (only server reflection needs this; loaded once). */
export function loadPackageDefinition(): PackageDefinition {
  packageDefinition ??= loadSync(PROTO_FILES, { includeDirs: [PROTO_DIR], keepCase: true });
  return packageDefinition;
}
