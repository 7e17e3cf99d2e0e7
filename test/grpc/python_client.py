"""Cross-language check: calls a gossipcache node with stubs generated from proto/*.proto.

Usage: python3 python_client.py <stubs dir> <host:port>
Prints one JSON object with what the node answered (values as UTF-8 text).
"""
import json
import sys

sys.path.insert(0, sys.argv[1])

import grpc  # noqa: E402
import groupcache_pb2  # noqa: E402
import groupcache_pb2_grpc  # noqa: E402
import gossipcache_pb2  # noqa: E402
import gossipcache_pb2_grpc  # noqa: E402

addr = sys.argv[2]
out = {}
with grpc.insecure_channel(addr) as channel:
    stub = groupcache_pb2_grpc.GroupCacheStub(channel)
    res = stub.Get(groupcache_pb2.GetRequest(group="g", key="hello"), timeout=10)
    out["value"] = res.value.decode("utf-8")
    out["minute_qps"] = res.minute_qps
    out["has_ttl"] = res.HasField("ttl_ms")
    res = stub.Get(groupcache_pb2.GetRequest(group="g", key="ttl"), timeout=10)
    out["ttl_ms"] = res.ttl_ms
    try:
        stub.Get(groupcache_pb2.GetRequest(group="nope", key="k"), timeout=10)
        out["unknown_group"] = "OK"
    except grpc.RpcError as e:
        out["unknown_group"] = e.code().name
        out["unknown_group_details"] = e.details()

    ext = gossipcache_pb2_grpc.GossipCacheStub(channel)
    batch = gossipcache_pb2.FetchBatch(requests=[
        gossipcache_pb2.FetchRequest(id=7, group="g", key="hello", timeout_ms=5000),
        gossipcache_pb2.FetchRequest(id=8, group="g", key="missing", timeout_ms=5000),
    ])
    replies = {}
    for reply_batch in ext.Fetch(iter([batch]), timeout=10):
        for r in reply_batch.replies:
            replies[r.id] = {"code": r.code, "value": r.value.decode("utf-8"), "message": r.message}
        if len(replies) == 2:
            break
    out["fetch"] = replies
    ext.Remove(gossipcache_pb2.RemoveRequest(group="g", key="hello"), timeout=10)
    out["removed"] = True
print(json.dumps(out))
