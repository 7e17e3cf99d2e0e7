// The gRPC peer protocol: what createNode composes, and what library users need to talk to nodes.

export { DEFAULT_PEER_TIMEOUT_MS, GrpcPeer, type GrpcPeerOptions } from './client.js';
export {
  DEFAULT_GRPC_LIMITS,
  type GrpcLimits,
  MAX_BATCH_REQUESTS,
  MAX_REQUEST_MESSAGE_BYTES,
} from './limits.js';
export { RingPeerPicker, type RingPeerPickerOptions } from './picker.js';
export {
  FETCH_PATH,
  GET_PATH,
  GOSSIPCACHE_SERVICE,
  GROUPCACHE_SERVICE,
  PROTO_DIR,
  PROTO_FILES,
  REMOVE_PATH,
} from './proto.js';
export { DEFAULT_MAX_MESSAGE_BYTES, PEER_METADATA } from './serve.js';
export { createGrpcServer, type GrpcServer, type GrpcServerOptions, type GrpcServerStats } from './server.js';
export { PeerError } from './status.js';
export type { TlsFiles } from './tls.js';
