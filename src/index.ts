// Public API of gossipcache. Keep this a plain list of exports.
export type { CacheStats } from './cache.js';
export {
  DuplicateGroupError,
  GetterTimeoutError,
  InvalidKeyError,
  isNotFound,
  NotFoundError,
  PeerTimeoutError,
} from './errors.js';
export type {
  EntryResult,
  EntrySource,
  GetEntryOptions,
  GetOptions,
  Getter,
  GetterResult,
  GetterValue,
  GroupOptions,
  GroupStats,
  HandOffOptions,
  HandOffResult,
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
export type { GossipNode, NodeOptions } from './node/node.js';
export { createNode } from './node/node.js';
export type { HandoffEntry, Peer, PeerGetResult, PeerPicker } from './peers.js';
export { noPeers } from './peers.js';
