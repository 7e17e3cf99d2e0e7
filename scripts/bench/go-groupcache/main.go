// The same-run Go baseline of the peer bench (scripts/bench/peer.ts): a groupcache node with an HTTP front
// (GET /bench/<key>) whose peers talk groupcache's own HTTP protocol through a tuned connection pool —
// "Go groupcache over HTTP with a tuned pool", the bar issue 3 quotes. Built by lib/go-groupcache.ts.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/golang/groupcache"
)

func main() {
	self := flag.String("self", "", "this node's peer URL, e.g. http://127.0.0.1:9001")
	peers := flag.String("peers", "", "comma-separated peer URLs including self")
	peerListen := flag.String("peer-listen", "", "address for groupcache's peer HTTP server")
	front := flag.String("front", "", "address for the front (GET /bench/<key>)")
	cacheBytes := flag.Int64("cache-bytes", 64<<20, "group cache budget")
	idle := flag.Int("idle-conns", 256, "idle connections kept per peer (the tuned pool)")
	flag.Parse()

	transport := &http.Transport{MaxIdleConns: *idle, MaxIdleConnsPerHost: *idle, IdleConnTimeout: 90 * time.Second}
	pool := groupcache.NewHTTPPoolOpts(*self, &groupcache.HTTPPoolOptions{})
	pool.Transport = func(context.Context) http.RoundTripper { return transport }
	pool.Set(strings.Split(*peers, ",")...)

	group := groupcache.NewGroup("bench", *cacheBytes, groupcache.GetterFunc(
		func(_ context.Context, key string, dest groupcache.Sink) error {
			return dest.SetString("value-of-" + key)
		}))

	go func() { log.Fatal(http.ListenAndServe(*peerListen, pool)) }()

	mux := http.NewServeMux()
	mux.HandleFunc("/bench/", func(w http.ResponseWriter, r *http.Request) {
		var b []byte
		if err := group.Get(r.Context(), strings.TrimPrefix(r.URL.Path, "/bench/"), groupcache.AllocatingByteSliceSink(&b)); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(b)
	})
	// Keys another node owns (for the bench): /_remote_keys?n=1000&prefix=peer-
	mux.HandleFunc("/_remote_keys", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		prefix := r.URL.Query().Get("prefix")
		for i, found := 0, 0; found < n; i++ {
			k := prefix + strconv.Itoa(i)
			if _, remote := pool.PickPeer(k); remote {
				fmt.Fprintln(w, k)
				found++
			}
		}
	})
	mux.HandleFunc("/_stats", func(w http.ResponseWriter, r *http.Request) {
		s := group.Stats
		fmt.Fprintf(w, `{"gets":%d,"cacheHits":%d,"peerLoads":%d,"peerErrors":%d,"loads":%d,"localLoads":%d,"serverRequests":%d}`,
			s.Gets.Get(), s.CacheHits.Get(), s.PeerLoads.Get(), s.PeerErrors.Get(), s.Loads.Get(), s.LocalLoads.Get(), s.ServerRequests.Get())
	})
	log.Fatal(http.ListenAndServe(*front, mux))
}
