/* drip: CONNS clients each send a 7,904-byte request head, its first PREFIX bytes in one write and the
 * rest one byte per round, as fast as they can, for SECONDS (benchmark tool, not a test). With a prefix,
 * every dripped byte makes a server that re-scans the head from its start read the prefix again. A client
 * whose connection the server ended (408, 431) starts over on a new one. Run `hostile-api.py health
 * SOCKET` beside it to see what the others get meanwhile.
 *
 *   gcc -O2 -o drip scripts/bench/drip.c && ./drip SOCKET [CONNS=500] [SECONDS=10] [PREFIX=0]
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_un addr;

static int dial(void) {
    /* A blocking connect: a non-blocking one fails with EAGAIN while the listen queue is full. */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) { perror("connect"); exit(1); }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: drip SOCKET [CONNS] [SECONDS] [PREFIX]\n"); return 2; }
    int conns = argc > 2 ? atoi(argv[2]) : 500;
    double seconds = argc > 3 ? atof(argv[3]) : 10;
    int prefix = argc > 4 ? atoi(argv[4]) : 0;
    if (conns < 1 || conns > 10000 || seconds <= 0 || prefix < 0 || prefix > 7900 ||
        strlen(argv[1]) >= sizeof addr.sun_path) return 2;
    signal(SIGPIPE, SIG_IGN);
    addr.sun_family = AF_UNIX;
    strcpy(addr.sun_path, argv[1]);
    /* Under the server's 8 KiB header limit. */
    static char head[8000];
    int len = snprintf(head, sizeof head, "GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Drip: ");
    memset(head + len, 'a', 7900 - len);
    memcpy(head + 7900, "\r\n\r\n", 4);
    len = 7904;
    int *fd = calloc((size_t)conns, sizeof *fd), *at = calloc((size_t)conns, sizeof *at);
    for (int i = 0; i < conns; i++) fd[i] = dial();
    long rounds = 0, restarts = 0;
    double end = now() + seconds;
    while (now() < end) {
        for (int i = 0; i < conns; i++) {
            ssize_t want = at[i] == 0 && prefix > 0 ? prefix : 1;
            ssize_t n = send(fd[i], head + at[i], (size_t)want, MSG_NOSIGNAL);
            if (n == want && (at[i] += (int)n) < len) continue;
            if (n < 0 && errno == EAGAIN) continue;
            close(fd[i]);
            fd[i] = dial();
            at[i] = 0;
            restarts++;
        }
        rounds++;
    }
    printf("%d dripping clients for %.0f s: %.0f bytes/s each, %ld started over\n", conns, seconds, rounds / seconds, restarts);
    return 0;
}
