# gossipcache cache node. Build: docker build -t gossipcache .   Run: see docker-compose.yml / docs/node.md
# Stage 1 compiles TypeScript and prunes dev dependencies; stage 2 is the slim runtime, non-root.
FROM node:20-slim AS build
# Lets tooling find and prune the intermediate build-stage image (scripts/docker-smoke.sh does).
LABEL gossipcache.stage=build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build before the sources are copied.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY proto ./proto
COPY src ./src
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/proto ./proto
COPY --from=build /app/dist ./dist
COPY bin ./bin
# The base image's unprivileged user (uid 1000).
USER node
# HTTP front, gRPC (peers), gossip (SWIM over UDP, plus TCP for joins and full syncs), memcached front
# (on when GOSSIPCACHE_MEMCACHED_ADDR is set, as the compose file does).
EXPOSE 8080 9090 7946/udp 7946/tcp 11211
# No curl in the slim image: Node's own fetch, on the port GOSSIPCACHE_HTTP_ADDR names.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["node", "-e", "const p=(process.env.GOSSIPCACHE_HTTP_ADDR||':8080').split(':').pop();fetch('http://127.0.0.1:'+p+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# The `gossipcache` command: execs node on dist/cli.js (node is PID 1) with glibc's mmap threshold fixed, so
# freed large values leave RSS (docs/memory.md, "The allocator").
ENTRYPOINT ["bin/gossipcache"]
