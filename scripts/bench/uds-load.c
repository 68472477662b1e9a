/* uds-load: HTTP/1.1 keep-alive load over an AF_UNIX stream socket (benchmark tool, not a test).
 *
 *   uds-load -s SOCKET [-p PATH] [-c CONNS] [-d SECONDS | -n REQUESTS] [-w WARMUP_SECONDS] [-t TIMEOUT_SECONDS]
 *            [-r RATE]
 *
 * One thread, epoll, CONNS connections, one request in flight per connection. A request's latency runs
 * from its write() to the moment its whole response is in (Content-Length or chunked body read through),
 * and goes into a log-linear histogram (~0.2% resolution). By default each connection sends its next
 * request as soon as the last answer is in (closed loop: at saturation the latency is mostly queueing).
 * With -r, requests go out on a fixed schedule of RATE per second over all connections (open loop) and
 * a request's latency runs from its scheduled time, so a late send (every connection busy) counts too. Non-200 answers, broken or timed-out
 * connections count as errors; the connection is then reopened. Prints one JSON object on stdout.
 * Built by scripts/bench-daemon.sh with gcc -O2; no binary is committed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Histogram over nanoseconds: exact below 1024 ns, then 512 sub-buckets per power of two. */
#define SUB 512
#define NBUCKETS (SUB * 48)
static uint64_t hist[NBUCKETS];

static int bucket_of(uint64_t v) {
    if (v < 2 * SUB) return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - 9; /* v >> shift lands in [512, 1023] */
    int idx = SUB * shift + (int)(v >> shift);
    return idx < NBUCKETS ? idx : NBUCKETS - 1;
}
/* Midpoint of a bucket, so a percentile is off by at most half a bucket (~0.1%). */
static double bucket_value(int idx) {
    if (idx < 2 * SUB) return idx;
    int shift = idx / SUB - 1;
    uint64_t low = (uint64_t)(idx - SUB * shift) << shift;
    return (double)low + (double)(1ull << shift) / 2.0;
}

enum { IDLE, SENDING, READING, RECONNECT };

struct conn {
    int fd, state;
    size_t sent;            /* bytes of the request written */
    char *buf;              /* response bytes so far */
    size_t len, cap;
    long header_end;        /* offset of the body, -1 until the header is in */
    long content_length;    /* -1: chunked or unknown */
    int chunked, status;
    int close_after;        /* the response said Connection: close */
    uint64_t served;        /* responses read on this connection */
    uint64_t started;       /* ns, CLOCK_MONOTONIC, of the request's first write */
};

static const char *sock_path, *req_path = "/";
static char request[1024];
static size_t request_len;
static int epfd;
static uint64_t completed, errors, non_200, timeouts, conn_errors, reconnects, last_body;
static int recording;
static uint64_t max_ns;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *msg) { fprintf(stderr, "uds-load: %s\n", msg); exit(2); }

static void close_conn(struct conn *c) {
    if (c->fd >= 0) { epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL); close(c->fd); }
    c->fd = -1;
    c->state = RECONNECT;
}

/* Non-blocking connect: an AF_UNIX connect either completes at once or fails (EAGAIN = backlog full). */
static int open_conn(struct conn *c) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket() failed");
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strncpy(sa.sun_path, sock_path, sizeof sa.sun_path - 1);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -errno;
    }
    c->fd = fd;
    c->state = IDLE;
    c->served = 0;
    struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl failed");
    return 0;
}

/* An error ends the connection: a half-read response leaves it out of step. */
static void fail(struct conn *c, uint64_t *counter) {
    if (recording) { errors++; (*counter)++; }
    close_conn(c);
}

/* A server may close an idle keep-alive connection just as the next request goes out (RFC 9112 9.3.1:
 * a client retries then). Only before any byte of the answer, and only on a connection that already
 * served: anything else is an error. */
static void closed_or_fail(struct conn *c) {
    if (c->served > 0 && c->len == 0) { reconnects++; close_conn(c); }
    else fail(c, &conn_errors);
}

static void want_write(struct conn *c, int on) {
    struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0), .data.ptr = c };
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void send_more(struct conn *c) {
    while (c->sent < request_len) {
        ssize_t n = write(c->fd, request + c->sent, request_len - c->sent);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) { want_write(c, 1); return; }
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) { closed_or_fail(c); return; }
        if (n <= 0) { fail(c, &conn_errors); return; }
        c->sent += (size_t)n;
    }
    if (c->state == SENDING) want_write(c, 0);
    c->state = READING;
}

static void start_request(struct conn *c, uint64_t started) {
    c->len = 0; c->sent = 0; c->header_end = -1; c->content_length = -1; c->chunked = 0; c->status = 0;
    c->close_after = 0;
    c->state = SENDING;
    c->started = started;
    send_more(c);
}

/* Parses the header once it is complete: status, Content-Length, Transfer-Encoding: chunked. */
static int parse_header(struct conn *c) {
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!end) return c->len > 65536 ? -1 : 0;
    c->header_end = end - c->buf + 4;
    if (c->len < 12 || memcmp(c->buf, "HTTP/1.", 7) != 0) return -1;
    c->status = atoi(c->buf + 9);
    for (char *line = memchr(c->buf, '\n', (size_t)c->header_end); line && line < end; line = memchr(line, '\n', (size_t)(end - line))) {
        line++;
        if (strncasecmp(line, "content-length:", 15) == 0) c->content_length = strtol(line + 15, NULL, 10);
        else if (strncasecmp(line, "connection:", 11) == 0) {
            char *v = line + 11, *eol = memchr(v, '\r', (size_t)(end - v) + 1);
            c->close_after = eol && memmem(v, (size_t)(eol - v), "close", 5) != NULL;
        }
        else if (strncasecmp(line, "transfer-encoding:", 18) == 0) {
            char *v = line + 18, *eol = memchr(v, '\r', (size_t)(end - v) + 1);
            c->chunked = eol && memmem(v, (size_t)(eol - v), "chunked", 7) != NULL;
        }
    }
    if (!c->chunked && c->content_length < 0) return -1; /* keep-alive needs a length */
    return 1;
}

/* Chunked body: walks the chunks from the start each time (a few per response). Returns the full
 * response length when complete, 0 when more is needed, -1 when malformed. */
static long chunked_end(struct conn *c, size_t *body) {
    size_t pos = (size_t)c->header_end;
    *body = 0;
    for (;;) {
        char *eol = memmem(c->buf + pos, c->len - pos, "\r\n", 2);
        if (!eol) return 0;
        char *hexend;
        long size = strtol(c->buf + pos, &hexend, 16);
        if (hexend == c->buf + pos || size < 0) return -1;
        pos = (size_t)(eol - c->buf) + 2;
        if (size == 0) { /* trailers until an empty line */
            for (;;) {
                char *t = memmem(c->buf + pos, c->len - pos, "\r\n", 2);
                if (!t) return 0;
                if (t == c->buf + pos) return (long)pos + 2;
                pos = (size_t)(t - c->buf) + 2;
            }
        }
        if (c->len < pos + (size_t)size + 2) return 0;
        pos += (size_t)size + 2;
        *body += (size_t)size;
    }
}

static void on_readable(struct conn *c) {
    for (;;) {
        if (c->cap - c->len < 16384) {
            c->cap = c->cap ? c->cap * 2 : 65536;
            c->buf = realloc(c->buf, c->cap);
            if (!c->buf) die("out of memory");
        }
        ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) { /* closed or broken */
            if (c->state == READING || c->state == SENDING) closed_or_fail(c);
            else { reconnects++; close_conn(c); }
            return;
        }
        if (c->state != READING && c->state != SENDING) { fail(c, &conn_errors); return; } /* unsolicited bytes */
        c->len += (size_t)n;
        if (c->header_end < 0) {
            int h = parse_header(c);
            if (h < 0) { fail(c, &conn_errors); return; }
            if (h == 0) continue;
        }
        long total; size_t body;
        if (c->chunked) {
            total = chunked_end(c, &body);
            if (total < 0) { fail(c, &conn_errors); return; }
        } else {
            total = c->header_end + c->content_length;
            body = (size_t)c->content_length;
            if ((long)c->len < total) total = 0;
        }
        if (total == 0) continue;
        if ((long)c->len > total) { fail(c, &conn_errors); return; } /* bytes past the response: not ours */
        uint64_t ns = now_ns() - c->started;
        if (recording) {
            completed++;
            if (c->status != 200) { errors++; non_200++; }
            else { hist[bucket_of(ns)]++; if (ns > max_ns) max_ns = ns; }
        }
        last_body = body;
        c->served++;
        c->state = IDLE;
        if (c->close_after) { reconnects++; close_conn(c); }
        return;
    }
}

static double percentile(uint64_t total, double p) {
    if (total == 0) return 0;
    uint64_t rank = (uint64_t)(p * (double)total + 0.999999), seen = 0;
    if (rank < 1) rank = 1;
    for (int i = 0; i < NBUCKETS; i++) {
        seen += hist[i];
        if (seen >= rank) { double v = bucket_value(i); return v > (double)max_ns ? (double)max_ns : v; } /* the midpoint may pass the max */
    }
    return (double)max_ns;
}

static void usage(void) {
    fprintf(stderr, "usage: uds-load -s SOCKET [-p PATH] [-c CONNS] [-d SECONDS | -n REQUESTS] [-w WARMUP_SECONDS] [-t TIMEOUT_SECONDS] [-r RATE]\n");
    exit(2);
}

int main(int argc, char **argv) {
    int conns = 64, opt;
    double duration = 0, warmup = 0, timeout = 10, rate = 0;
    uint64_t max_requests = 0;
    while ((opt = getopt(argc, argv, "s:p:c:d:n:w:t:r:")) != -1) {
        char *end = NULL;
        switch (opt) {
        case 's': sock_path = optarg; break;
        case 'p': req_path = optarg; break;
        case 'c': conns = (int)strtol(optarg, &end, 10); if (*end || conns < 1 || conns > 100000) die("-c: a connection count from 1 to 100000"); break;
        case 'd': duration = strtod(optarg, &end); if (*end || duration <= 0) die("-d: seconds > 0"); break;
        case 'n': max_requests = strtoull(optarg, &end, 10); if (*end || max_requests == 0) die("-n: a request count > 0"); break;
        case 'w': warmup = strtod(optarg, &end); if (*end || warmup < 0) die("-w: seconds >= 0"); break;
        case 't': timeout = strtod(optarg, &end); if (*end || timeout <= 0) die("-t: seconds > 0"); break;
        case 'r': rate = strtod(optarg, &end); if (*end || rate <= 0 || rate > 1e7) die("-r: requests per second, > 0"); break;
        default: usage();
        }
    }
    if (!sock_path || optind != argc) usage();
    if (strlen(sock_path) >= sizeof ((struct sockaddr_un *)0)->sun_path) die("socket path too long for AF_UNIX");
    if (duration == 0 && max_requests == 0) duration = 5;
    if (strlen(req_path) > 900 || req_path[0] != '/') die("-p: an absolute request path, at most 900 bytes");
    request_len = (size_t)snprintf(request, sizeof request,
                                   "GET %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: uds-load\r\nAccept: */*\r\n\r\n", req_path);
    signal(SIGPIPE, SIG_IGN);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1 failed");

    struct conn *cs = calloc((size_t)conns, sizeof *cs);
    if (!cs) die("out of memory");
    for (int i = 0; i < conns; i++) {
        cs[i].fd = -1;
        int r = open_conn(&cs[i]);
        if (r == -ENOENT || r == -ECONNREFUSED) {
            fprintf(stderr, "uds-load: cannot connect to %s: %s\n", sock_path, strerror(-r));
            return 1;
        }
        if (r < 0) cs[i].state = RECONNECT; /* backlog full: retried in the loop */
    }

    uint64_t t0 = now_ns(), timeout_ns = (uint64_t)(timeout * 1e9);
    uint64_t measure_start = t0 + (uint64_t)(warmup * 1e9);
    uint64_t stop_at = duration > 0 ? measure_start + (uint64_t)(duration * 1e9) : UINT64_MAX;
    recording = warmup == 0;
    /* Open loop: a timerfd wakes the loop at the next slot (epoll_wait's milliseconds are too coarse). */
    int tfd = -1;
    uint64_t next_slot = t0, interval = rate > 0 ? (uint64_t)(1e9 / rate) : 0;
    if (rate > 0) {
        tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
        if (tfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &ev) < 0) die("timerfd failed");
    }
    struct epoll_event evs[256];
    uint64_t now = t0;
    for (;;) {
        now = now_ns();
        if (!recording && now >= measure_start) recording = 1;
        if (now >= stop_at || (max_requests && completed >= max_requests)) break;
        uint64_t inflight = 0;
        if (max_requests)
            for (int i = 0; i < conns; i++) inflight += cs[i].state == SENDING || cs[i].state == READING;
        int idle_waiting = 0;
        for (int i = 0; i < conns; i++) {
            struct conn *c = &cs[i];
            if (c->state == RECONNECT && open_conn(c) < 0) { if (recording) { conn_errors++; errors++; } continue; }
            if (c->state == IDLE) {
                /* in request mode, issue no more than asked for */
                if (max_requests && completed + inflight >= max_requests) continue;
                if (rate > 0) {
                    if (now < next_slot) { idle_waiting = 1; continue; }
                    start_request(c, next_slot);
                    next_slot += interval;
                } else {
                    start_request(c, now_ns());
                }
                inflight++;
            } else if ((c->state == READING || c->state == SENDING) && now - c->started > timeout_ns) {
                fail(c, &timeouts);
            }
        }
        if (idle_waiting) { /* armed only when a connection waits for its slot, or it would spin */
            struct itimerspec its = { .it_value = { .tv_sec = (time_t)(next_slot / 1000000000ull),
                                                    .tv_nsec = (long)(next_slot % 1000000000ull) } };
            timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
        }
        int n = epoll_wait(epfd, evs, 256, 100);
        if (n < 0 && errno != EINTR) die("epoll_wait failed");
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c) { uint64_t ticks; if (read(tfd, &ticks, sizeof ticks) < 0) { /* nothing due yet */ } continue; }
            if (c->fd < 0) continue;
            if ((evs[i].events & EPOLLOUT) && c->state == SENDING) send_more(c);
            if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) on_readable(c);
        }
    }
    double seconds = (double)(now - measure_start) / 1e9;
    uint64_t ok = completed - non_200;
    printf("{\"socket\":\"%s\",\"path\":\"%s\",\"rate\":%.0f,\"connections\":%d,\"requests\":%" PRIu64 ",\"errors\":%" PRIu64
           ",\"non_200\":%" PRIu64 ",\"timeouts\":%" PRIu64 ",\"connection_errors\":%" PRIu64 ",\"server_closes\":%" PRIu64
           ",\"seconds\":%.3f,\"rps\":%.1f,\"p50_ms\":%.4f,\"p90_ms\":%.4f,\"p99_ms\":%.4f,\"max_ms\":%.4f,\"body_bytes\":%" PRIu64 "}\n",
           sock_path, req_path, rate, conns, completed, errors, non_200, timeouts, conn_errors, reconnects, seconds,
           seconds > 0 ? (double)completed / seconds : 0.0, percentile(ok, 0.50) / 1e6, percentile(ok, 0.90) / 1e6,
           percentile(ok, 0.99) / 1e6, (double)max_ns / 1e6, last_body);
    return 0;
}
