// A seeded PRNG for fuzz tests and benchmark workloads: a failing run prints its seed and replays
// exactly; a benchmark gets the same workload on every run. It is the membership simulator's own
// (mulberry32, floats in [0, 1)), so there is one.

export { seededRandom as prng } from '../../src/membership/testing/sim-clock.js';
