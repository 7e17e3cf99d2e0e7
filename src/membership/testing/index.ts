// TEST-ONLY: the membership testing toolkit. The SWIM state machine (../swim.ts) takes its transport,
// clock and PRNG from outside, so tests and benchmarks run it here instead of on real sockets and time:
//   memory-network.ts  MemoryNetwork / MemoryTransport: loss, delay, partitions, crashed and paused nodes
//   sim-clock.ts       SimClock (discrete-event time), PausableClock (one frozen node), seededRandom
//   sim-cluster.ts     SimCluster: many Swim nodes on one network and clock, with crash/pause/recording
// Deterministic: the same seed replays the same run. Production code never imports this folder.

export {
  MemoryNetwork,
  type MemoryNetworkOptions,
  type MemoryNetworkStats,
  MemoryTransport,
} from './memory-network.js';
export { PausableClock, SimClock, seededRandom } from './sim-clock.js';
export { SimCluster, type SimNode, type SimOptions, simAddr } from './sim-cluster.js';
