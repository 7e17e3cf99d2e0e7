// `gossipcache/cluster`: one process's place in a cluster — createNode wires the core's groups to the
// gRPC peer protocol (src/grpc) and SWIM membership (src/membership). Importing it loads both; the core
// (`gossipcache`) does not.

export { createNode, type GossipNode, type NodeOptions, RING_META } from './node.js';
