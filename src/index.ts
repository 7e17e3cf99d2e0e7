// Public API of gossipcache's core (`import … from 'gossipcache'`): groups, the load path's errors and
// the peers seam. Keep this a plain list of exports. It loads neither gRPC nor membership: the cluster
// wiring is `gossipcache/cluster` (createNode), the peer protocol `gossipcache/grpc`, gossip
// `gossipcache/membership` (package.json "exports"; test/core/exports.test.ts checks it).
export type { CacheStats } from './cache.js';
export {
  DuplicateGroupError,
  GetterTimeoutError,
  InvalidKeyError,
  isNotFound,
  isOwnerLoadError,
  loadFailureName,
  NotFoundError,
  OwnerLoadError,
  PeerTimeoutError,
} from './errors.js';
export type {
  GetOptions,
  Getter,
  GetterResult,
  GetterValue,
  GroupOptions,
  GroupStats,
  HandOffOptions,
  HandOffResult,
  HotKey,
  MemoryStats,
  ServedGroup,
  ServedRegistry,
  SetOptions,
} from './group.js';
export {
  DEFAULT_MAX_KEY_BYTES,
  defaultRegistry,
  Group,
  GroupRegistry,
  MAX_TTL_MS,
  REFRESH_RETRY_MS,
} from './group.js';
export { DEFAULT_HANDOFF_WINDOW_MS, HandoffWindow, handoffCandidates, successorOf } from './handoff.js';
export type {
  HotCacheView,
  HotKeyPolicy,
  PromotionCandidate,
  RateBasedPromotionOptions,
} from './hotkeys.js';
export { RATE_WINDOW_MS, randomPromotion, rateBasedPromotion } from './hotkeys.js';
export type { Logger } from './logger.js';
export { silentLogger } from './logger.js';
export type {
  EntryResult,
  EntrySource,
  GroupServer,
  HandoffEntry,
  Peer,
  PeerGetResult,
  PeerPicker,
} from './peers.js';
export { noPeers } from './peers.js';
export type { RingOptions } from './ring.js';
export { murmur3, Ring } from './ring.js';
export type { SlabStats } from './slab.js';
