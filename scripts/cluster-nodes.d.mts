// Types of scripts/cluster-nodes.mjs, for the tests that import it.

export declare const NODES: number;

export declare function clusterNode(
  i: number,
  env?: Record<string, string | undefined>,
): { name: string; env: Record<string, string> };
