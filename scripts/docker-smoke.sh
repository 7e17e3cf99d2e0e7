#!/usr/bin/env bash
# Smoke test of the Docker packaging without a registry: builds an image by `docker import` of a root
# filesystem assembled from this machine (node binary + its shared libraries + /bin/sh + the built app with
# its production node_modules), starts docker-compose.yml with 3 node replicas and the example origin,
# checks that each replica's PID 1 is node with the mmap threshold and young-generation cap bin/gossipcache sets, that they form one
# ring (3 alive members, equal ring checksums on every node) and that a GET through any node works with one
# origin load per key, that every replica's published memcached port answers (a get, and a set read back
# through every node), then tears everything down.
#
# Needs root (starts dockerd if it is not running). Installs docker.io / docker-compose with apt-get
# when missing. Usage: scripts/docker-smoke.sh   (KEEP=1 leaves the cluster running)
#
# SMOKE_DOCKERFILE=1 builds the image with the real Dockerfile instead: a stand-in for node:20-slim is
# imported first (the same node + npm + /bin/sh + user `node`), tagged node:20-slim only if no such
# image exists (and untagged afterwards), and `docker build --network host` runs the Dockerfile's
# `npm ci` against the npm registry the host uses.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
IMAGE=gossipcache:smoke
PROJECT=gcsmoke
STANDIN_TAG=
WORK=$(mktemp -d /tmp/gossipcache-smoke.XXXXXX)
DOCKERD_PID=
log() { printf 'smoke: %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

cleanup() {
  local rc=$?
  if [ -z "${KEEP:-}" ]; then
    GOSSIPCACHE_IMAGE=$IMAGE docker-compose -p "$PROJECT" -f "$ROOT/docker-compose.yml" down -t 20 >/dev/null 2>&1 || true
    docker rmi "$IMAGE" >/dev/null 2>&1 || true
    if [ -n "${SMOKE_DOCKERFILE:-}" ]; then
      docker image prune -f --filter label=gossipcache.stage=build >/dev/null 2>&1 || true
    fi
    if [ -n "$STANDIN_TAG" ]; then docker rmi "$STANDIN_TAG" >/dev/null 2>&1 || true; fi
    if [ -n "$DOCKERD_PID" ]; then kill "$DOCKERD_PID" 2>/dev/null || true; fi
  fi
  rm -rf "$WORK"
  if [ $rc -eq 0 ]; then log PASS; fi
}
trap cleanup EXIT

# 1. Docker daemon and docker-compose.
if ! command -v docker >/dev/null || ! command -v docker-compose >/dev/null; then
  log "installing docker.io and docker-compose"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io docker-compose >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd (vfs storage, no iptables)"
  dockerd --storage-driver=vfs --iptables=false >"$WORK/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || fail "dockerd did not start; see its log: $(tail -5 "$WORK/dockerd.log")"
fi

# 2. Root filesystem: node + libs (ldd), a passwd with the unprivileged user `node` (uid 1000).
FS=$WORK/rootfs
copy_bin() { # copy an executable and the shared libraries it needs into $FS
  local bin=$1 dest=$2
  mkdir -p "$FS$(dirname "$dest")"
  cp -L "$bin" "$FS$dest"
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$FS$(dirname "$lib")"
    [ -e "$FS$lib" ] || cp -L "$lib" "$FS$lib"
  done
}
mkdir -p "$FS/etc" "$FS/tmp" "$FS/root" "$FS/home/node"
chmod 1777 "$FS/tmp"
copy_bin "$(command -v node)" /usr/local/bin/node
printf 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000:node:/home/node:/bin/sh\n' >"$FS/etc/passwd"
printf 'root:x:0:\nnode:x:1000:\n' >"$FS/etc/group"
printf 'hosts: files dns\n' >"$FS/etc/nsswitch.conf"
chown 1000:1000 "$FS/home/node"

# /bin/sh: the entrypoint, bin/gossipcache, is a shell launcher (node:20-slim has one).
copy_bin "$(readlink -f /bin/sh)" /bin/sh

if [ -n "${SMOKE_DOCKERFILE:-}" ]; then
  # The stand-in base also needs what the Dockerfile's build stage runs: env (npm bins' shebang), npm.
  copy_bin "$(command -v env)" /usr/bin/env
  NPM_DIR=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
  mkdir -p "$FS/usr/local/lib/node_modules"
  cp -r "$NPM_DIR" "$FS/usr/local/lib/node_modules/npm"
  printf '#!/bin/sh\nexec node /usr/local/lib/node_modules/npm/bin/npm-cli.js "$@"\n' >"$FS/usr/local/bin/npm"
  chmod +x "$FS/usr/local/bin/npm"
  # A host that reaches the registry through a TLS-inspecting proxy trusts its CA by NODE_EXTRA_CA_CERTS;
  # the stand-in inherits that trust (a public certificate), so npm ci works the same inside the build.
  EXTRA_CA=()
  if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ]; then
    mkdir -p "$FS/etc/ssl/certs"
    cp "$NODE_EXTRA_CA_CERTS" "$FS/etc/ssl/certs/host-extra-ca.crt"
    EXTRA_CA=(--change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/host-extra-ca.crt')
  fi
  if docker image inspect node:20-slim >/dev/null 2>&1; then
    log "node:20-slim exists locally; building on it"
  else
    log "importing a stand-in for node:20-slim ($(du -sh "$FS" | cut -f1))"
    tar -C "$FS" -c . | docker import --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' "${EXTRA_CA[@]}" \
      --change 'CMD ["node"]' - node:20-slim >/dev/null
    STANDIN_TAG=node:20-slim
  fi
  log "docker build (the real Dockerfile, npm ci over the host network)"
  docker build --force-rm --network host -t "$IMAGE" "$ROOT" >"$WORK/build.log" 2>&1 ||
    { tail -30 "$WORK/build.log" >&2; fail "docker build failed"; }
  docker image inspect -f '{{json .Config.Healthcheck.Test}}' "$IMAGE" | grep -q healthz ||
    fail "the built image has no HEALTHCHECK on /healthz"
  [ "$(docker image inspect -f '{{.Config.User}}' "$IMAGE")" = node ] || fail "the built image does not run as node"
else
  log "building the app"
  npm run build --silent
  mkdir -p "$FS/app"
  cp -r bin dist proto package.json "$FS/app/"
  # Production dependencies only (npm's own list), keeping their node_modules paths.
  npm ls --omit=dev --parseable --all 2>/dev/null | grep '/node_modules/' | while read -r dir; do
    rel=${dir#"$ROOT"/}
    mkdir -p "$FS/app/$(dirname "$rel")"
    [ -e "$FS/app/$rel" ] || cp -r "$dir" "$FS/app/$rel"
  done
  log "rootfs is $(du -sh "$FS" | cut -f1); importing as $IMAGE"
  tar -C "$FS" -c . | docker import \
    --change 'USER node' --change 'WORKDIR /app' --change 'ENV NODE_ENV=production' \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    --change 'EXPOSE 8080 9090 7946/udp 7946/tcp' \
    --change 'ENTRYPOINT ["bin/gossipcache"]' - "$IMAGE" >/dev/null
fi

# 3. The cluster (3 replicas from the compose file itself, no --scale).
export GOSSIPCACHE_IMAGE=$IMAGE
compose() { docker-compose -p "$PROJECT" -f "$ROOT/docker-compose.yml" "$@"; }
compose down -t 5 >/dev/null 2>&1 || true
log "docker-compose up (no build)"
compose up -d --no-build
ids=$(compose ps -q node)
[ "$(echo "$ids" | wc -l)" -eq 3 ] || fail "expected 3 node containers, got: $ids"

# Each replica is reached at its published host port (userland proxy) if that works, else at its
# container IP on the bridge network (reachable from the host without iptables).
declare -a URLS=()
for id in $ids; do
  hp=$(docker port "$id" 8080/tcp 2>/dev/null | head -1 | sed 's/.*://')
  ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$id")
  url=
  for _ in $(seq 40); do
    if [ -n "$hp" ] && curl -fsS -m 2 "http://127.0.0.1:$hp/healthz" >/dev/null 2>&1; then
      url=http://127.0.0.1:$hp
      break
    fi
    if curl -fsS -m 2 "http://$ip:8080/healthz" >/dev/null 2>&1; then
      url=http://$ip:8080
      break
    fi
    sleep 0.5
  done
  [ -n "$url" ] || { compose logs --tail 30 node >&2; fail "replica $id answers neither on host port ${hp:-?} nor at $ip:8080"; }
  case $url in http://127.0.0.1:*) log "replica ${id:0:12}: host port $hp (published ports work)" ;;
    *) log "replica ${id:0:12}: host port ${hp:-none} did not answer; using container IP $ip" ;; esac
  URLS+=("$url")
done

# 3b. The launcher exec'd node as PID 1 with glibc's mmap threshold fixed (docs/memory.md, "The allocator") and
# V8's young generation capped (docs/memory.md, "Trade-offs").
for id in $ids; do
  pid1=$(docker exec "$id" node -e 'const f=require("fs");process.stdout.write(f.readFileSync("/proc/1/comm","utf8").trim()+" "+f.readFileSync("/proc/1/environ","utf8").split("\0").filter(v=>v.startsWith("MALLOC_MMAP_THRESHOLD_=")).join(",")+" "+f.readFileSync("/proc/1/cmdline","utf8").split("\0").filter(v=>v.startsWith("--max-semi-space-size")).join(","))')
  [ "$pid1" = "node MALLOC_MMAP_THRESHOLD_=131072 --max-semi-space-size=8" ] || fail "replica ${id:0:12}: PID 1 is '$pid1', expected node with MALLOC_MMAP_THRESHOLD_=131072 and --max-semi-space-size=8"
done
log "PID 1 of every replica is node, with MALLOC_MMAP_THRESHOLD_=131072 and --max-semi-space-size=8"

# 4. One ring: every node sees 3 alive members and the same checksum.
log "waiting for one ring of 3"
ok=
for _ in $(seq 60); do
  sums=()
  alive_ok=1
  for u in "${URLS[@]}"; do
    body=$(curl -fsS -m 2 "$u/_cluster" || echo '{}')
    sums+=("$(node -e 'const b=JSON.parse(process.argv[1]);process.stdout.write(String(b.ringChecksum))' "$body")")
    n=$(node -e 'const b=JSON.parse(process.argv[1]);process.stdout.write(String((b.members||[]).filter(m=>m.state==="alive").length))' "$body")
    [ "$n" = 3 ] || alive_ok=
  done
  if [ -n "$alive_ok" ] && [ "${sums[0]}" != undefined ] && [ "${sums[0]}" = "${sums[1]}" ] && [ "${sums[1]}" = "${sums[2]}" ]; then
    ok=1
    break
  fi
  sleep 1
done
[ -n "$ok" ] || { compose logs --tail 40 node >&2; fail "no single ring: checksums ${sums[*]}"; }
log "one ring: 3 alive members, checksum ${sums[0]}"

# 5. GET through every node: same value, one origin load per key.
for key in Tom Jack 'a/b c'; do
  enc=$(node -e 'process.stdout.write(encodeURIComponent(process.argv[1]))' "$key")
  for u in "${URLS[@]}"; do
    v=$(curl -fsS -m 10 "$u/default/$enc") || fail "GET $u/default/$enc failed"
    [ "$v" = "origin value of $key" ] || fail "GET $u/default/$enc answered '$v'"
  done
done
origin_id=$(compose ps -q origin)
loads=$(docker exec "$origin_id" node -e 'fetch("http://127.0.0.1:8000/_loads").then(r=>r.text()).then(t=>process.stdout.write(t))')
log "origin loads: $loads"
[ "$(node -e 'process.stdout.write(String(JSON.parse(process.argv[1]).total))' "$loads")" = 3 ] ||
  fail "expected 3 origin loads (one per key), got $loads"
log "GET works through every node with one load per key"

# 5b. The memcached front the compose file turns on and publishes (11211-11220 → 11211): `get` of a key
# already loaded (no new origin load), then a `set` through one replica read back through every other.
mc() { # mc <host> <port> <request with \r\n written out> → the reply, its line ends shown as |
  node -e '
    const s = require("node:net").connect(Number(process.argv[2]), process.argv[1]);
    let got = ""; const show = () => process.stdout.write(got.replace(/\r\n/g, "|"));
    const t = setTimeout(() => { show(); process.exit(1); }, 5000);
    s.on("data", (d) => { got += d; if (/(END|STORED|VERSION [^\r]*|ERROR[^\r]*)\r\n$/.test(got)) { clearTimeout(t); show(); s.destroy(); } });
    s.on("error", () => process.exit(1));
    s.write(process.argv[3].replace(/\\r\\n/g, "\r\n"));' "$1" "$2" "$3"
}
declare -a MCS=()
for id in $ids; do
  hp=$(docker port "$id" 11211/tcp 2>/dev/null | head -1 | sed 's/.*://')
  ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$id")
  if [ -n "$hp" ] && mc 127.0.0.1 "$hp" 'version\r\n' >/dev/null 2>&1; then
    MCS+=("127.0.0.1 $hp")
  elif mc "$ip" 11211 'version\r\n' >/dev/null 2>&1; then
    log "replica ${id:0:12}: memcached host port ${hp:-none} did not answer; using container IP $ip"
    MCS+=("$ip 11211")
  else
    fail "replica ${id:0:12}: memcached answers neither on host port ${hp:-?} nor at $ip:11211"
  fi
done
want='VALUE Tom 0 19|origin value of Tom|END|'
for m in "${MCS[@]}"; do
  # shellcheck disable=SC2086
  v=$(mc $m 'get Tom\r\n') || fail "memcached get Tom at $m failed: '$v'"
  [ "$v" = "$want" ] || fail "memcached get Tom at $m answered '$v'"
done
# shellcheck disable=SC2086
[ "$(mc ${MCS[0]} 'set smoke-mc 0 0 2\r\nhi\r\n')" = 'STORED|' ] || fail "memcached set at ${MCS[0]} failed"
for m in "${MCS[@]}"; do
  # shellcheck disable=SC2086
  v=$(mc $m 'get smoke-mc\r\n') || true
  [ "$v" = 'VALUE smoke-mc 0 2|hi|END|' ] || fail "memcached get smoke-mc at $m answered '$v'"
done
loads=$(docker exec "$origin_id" node -e 'fetch("http://127.0.0.1:8000/_loads").then(r=>r.text()).then(t=>process.stdout.write(t))')
[ "$(node -e 'process.stdout.write(String(JSON.parse(process.argv[1]).total))' "$loads")" = 3 ] ||
  fail "memcached gets of loaded keys went to the origin: $loads"
log "memcached front: published port answers on every replica; get, and set read back through every node"

# 6. Graceful stop: SIGTERM → leave → exit 0.
compose stop -t 20 node >/dev/null
for id in $ids; do
  code=$(docker inspect -f '{{.State.ExitCode}}' "$id")
  [ "$code" = 0 ] || fail "replica ${id:0:12} exited with $code after SIGTERM"
done
log "all replicas left and exited 0 on SIGTERM"
