// The groups a node serves, built from its configuration: one Group per configured group, each with its
// loader (origin.ts) and the node-wide and per-group options. Apart from main.ts so that tests build
// exactly the groups a node would, in-process.

import { Group, type GroupRegistry } from '../group.js';
import type { NodeConfig } from './config.js';
import { createOrigin, type Origin } from './origin.js';

/** Registers the configured groups in `registry`; returns their loaders, for the caller to close. */
export function createGroups(config: NodeConfig, registry: GroupRegistry): Origin[] {
  const origins: Origin[] = [];
  for (const g of config.groups) {
    const origin = createOrigin(g.origin, {
      timeoutMs: config.originTimeoutMs,
      maxBytes: config.originMaxBytes,
      connections: config.originConnections,
    });
    origins.push(origin);
    new Group({
      name: g.name,
      cacheBytes: g.cacheBytes,
      getter: origin.load,
      registry,
      hotMaxAgeMs: config.hotMaxAgeMs,
      // Defaults for values that name no windows; an origin's Cache-Control windows win (origin.ts).
      staleWhileRevalidateMs: g.staleWhileRevalidateMs,
      staleIfErrorMs: g.staleIfErrorMs,
    });
  }
  return origins;
}
