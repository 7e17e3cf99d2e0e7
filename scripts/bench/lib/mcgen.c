// mcgen: a small memcached text-protocol load generator for the memcached bench (scripts/bench/memcached.ts).
// Why not memaslap: it sets its own key window before it gets (so a read-through front would serve values
// memaslap wrote, not values it loaded), cannot pipeline a fixed number of gets per connection, and cannot
// send a 100-key get. This one: C with epoll (little CPU next to the servers on a 2-core box), `conns`
// connections each keeping `depth` requests in flight, uniformly random keys `key-0000`…, and replies
// parsed fully (VALUE header, data block, END), so a reply is never counted before it is complete.
//
// usage: mcgen <port> <conns> <depth> <seconds> <nkeys> <keys-per-get>
// prints: requests=<n> values=<n> errors=<n> seconds=<s>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RBUF (1 << 20)

typedef struct {
  int fd;
  char *rbuf;
  size_t rlen;
  long skip; /* data bytes (+2) still to skip */
  int inflight;
} conn_t;

static unsigned int rng = 2463534242u;
static unsigned int next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 17;
  rng ^= rng << 5;
  return rng;
}

static int nkeys, per_get;
static long requests, values, errors;

static size_t make_request(char *out) {
  size_t n = 0;
  memcpy(out, "get", 3);
  n = 3;
  for (int i = 0; i < per_get; i++) n += sprintf(out + n, " key-%04u", next_rand() % nkeys);
  out[n++] = '\r';
  out[n++] = '\n';
  return n;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static void send_requests(conn_t *c, int count) {
  static char buf[1 << 16];
  size_t n = 0;
  for (int i = 0; i < count; i++) {
    n += make_request(buf + n);
    if (n > sizeof(buf) - 4096) {
      if (write(c->fd, buf, n) != (ssize_t)n) { perror("write"); exit(1); }
      n = 0;
    }
  }
  if (n > 0 && write(c->fd, buf, n) != (ssize_t)n) { perror("write"); exit(1); }
  c->inflight += count;
}

/* Parses complete replies in c->rbuf; returns how many requests completed. */
static int parse(conn_t *c) {
  int done = 0;
  size_t pos = 0;
  for (;;) {
    if (c->skip > 0) {
      size_t avail = c->rlen - pos;
      size_t k = avail < (size_t)c->skip ? avail : (size_t)c->skip;
      pos += k;
      c->skip -= k;
      if (c->skip > 0) break;
    }
    char *start = c->rbuf + pos;
    char *nl = memchr(start, '\n', c->rlen - pos);
    if (!nl) break;
    size_t linelen = nl - start + 1;
    if (linelen >= 6 && memcmp(start, "VALUE ", 6) == 0) {
      /* VALUE <key> <flags> <bytes>[ <cas>]\r\n */
      char *p = start + 6;
      while (*p != ' ') p++;
      p++;
      while (*p != ' ') p++;
      long bytes = strtol(p + 1, NULL, 10);
      values++;
      c->skip = bytes + 2;
    } else if (linelen == 5 && memcmp(start, "END\r\n", 5) == 0) {
      done++;
    } else {
      errors++;
      done++; /* ERROR, SERVER_ERROR, CLIENT_ERROR end a reply */
    }
    pos += linelen;
  }
  memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
  c->rlen -= pos;
  return done;
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: mcgen <port> <conns> <depth> <seconds> <nkeys> <keys-per-get>\n");
    return 2;
  }
  int port = atoi(argv[1]), nconns = atoi(argv[2]), depth = atoi(argv[3]);
  double seconds = atof(argv[4]);
  nkeys = atoi(argv[5]);
  per_get = atoi(argv[6]);
  int ep = epoll_create1(0);
  conn_t *conns = calloc(nconns, sizeof(conn_t));
  for (int i = 0; i < nconns; i++) {
    conn_t *c = &conns[i];
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0) { perror("connect"); return 1; }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->rbuf = malloc(RBUF);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
  }
  double t0 = now(), end = t0 + seconds;
  for (int i = 0; i < nconns; i++) send_requests(&conns[i], depth);
  struct epoll_event evs[256];
  int stopping = 0;
  for (;;) {
    double t = now();
    if (!stopping && t >= end) stopping = 1;
    if (stopping) {
      int any = 0;
      for (int i = 0; i < nconns; i++) any |= conns[i].inflight > 0;
      if (!any || t > end + 10) break;
    }
    int n = epoll_wait(ep, evs, 256, 100);
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      ssize_t r = read(c->fd, c->rbuf + c->rlen, RBUF - c->rlen);
      if (r <= 0) {
        if (r < 0 && errno == EINTR) continue;
        fprintf(stderr, "connection closed by the server\n");
        return 1;
      }
      c->rlen += r;
      int done = parse(c);
      c->inflight -= done;
      requests += done;
      if (!stopping && done > 0) send_requests(c, done);
    }
  }
  printf("requests=%ld values=%ld errors=%ld seconds=%.3f\n", requests, values, errors, now() - t0);
  return 0;
}
