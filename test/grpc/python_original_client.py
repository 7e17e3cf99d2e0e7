"""Calls a gossipcache node with stubs generated from test/grpc/original/groupcache.proto (groupcache's
own proto2 contract, no ttl_ms): what a client written for Go groupcache sends and expects.

Usage: python3 python_original_client.py <stubs dir> <host:port>
Prints one JSON object.
"""
import json
import sys

sys.path.insert(0, sys.argv[1])

import grpc  # noqa: E402
import groupcache_pb2  # noqa: E402
import groupcache_pb2_grpc  # noqa: E402

out = {}
with grpc.insecure_channel(sys.argv[2]) as channel:
    stub = groupcache_pb2_grpc.GroupCacheStub(channel)
    res = stub.Get(groupcache_pb2.GetRequest(group="g", key="hello"), timeout=10)
    out["value"] = res.value.decode("utf-8")
    out["minute_qps"] = res.minute_qps
    # A TTL entry: the node adds field 4 (ttl_ms), which this client does not know and must skip.
    res = stub.Get(groupcache_pb2.GetRequest(group="g", key="ttl"), timeout=10)
    out["ttl_value"] = res.value.decode("utf-8")
    try:
        stub.Get(groupcache_pb2.GetRequest(group="g", key="missing"), timeout=10)
        out["missing"] = "OK"
    except grpc.RpcError as e:
        out["missing"] = e.code().name
print(json.dumps(out))
