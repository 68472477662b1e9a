/* `crypto-sentinel post` on a simple command line (only --env, --libcrypto, --timeout, --expect-fips,
 * --format, --fail-on, --name, each as `--option value`) starts its probe children here, from an ELF
 * constructor: before the Swift runtime, Foundation and the rest of a static Swift binary's start
 * (~3 ms, as long as a non-FIPS POST itself), which then run beside the probe instead of before it.
 *
 * Nothing is decided here. A child is started with exactly the argv, empty environment and stdin
 * bytes PostRunner would use (its spawn is mirrored below: new session, default signal dispositions,
 * empty mask), and PostRunner takes it over only when what it was about to spawn is byte for byte the
 * same; otherwise it spawns its own. Children nobody takes (a usage error, --help, another plan) are
 * killed with their session and reaped at exit. */
#define _GNU_SOURCE
#include "CEarlyPost.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { MAX_LIBRARIES = 8, MAX_PAIRS = 64, MAX_ENV_BLOCK = 16384 };

struct early {
    char *argv[4]; /* probe, --env-stdin, library, NULL */
    sentinel_early_child child;
    int taken;
};

static struct early children[MAX_LIBRARIES];
static int child_count;
static unsigned char env_block[MAX_ENV_BLOCK];
static size_t env_len;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* PostRunner.childEnvironment: what a POST child never sees (it would talk to systemd as the service). */
static int withheld(const char *pair, size_t key_len) {
    return (key_len == 13 && strncmp(pair, "NOTIFY_SOCKET", 13) == 0) || strncmp(pair, "WATCHDOG_", 9) == 0;
}

static int by_key(const void *a, const void *b) {
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    size_t lx = strcspn(x, "="), ly = strcspn(y, "=");
    int c = memcmp(x, y, lx < ly ? lx : ly);
    return c ? c : (lx > ly) - (lx < ly);
}

/* PostRunner.locateProbe: $SENTINEL_PROBE, else sentinel-probe beside this executable. */
static char *locate_probe(void) {
    const char *named = getenv("SENTINEL_PROBE");
    if (named && *named) return access(named, X_OK) == 0 ? strdup(named) : NULL;
    char exe[PATH_MAX + 1];
    ssize_t n = readlink("/proc/self/exe", exe, PATH_MAX);
    if (n <= 0) return NULL;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash || (size_t)(slash + 1 - exe) + sizeof "sentinel-probe" > sizeof exe) return NULL;
    strcpy(slash + 1, "sentinel-probe");
    return access(exe, X_OK) == 0 ? strdup(exe) : NULL;
}

static uint64_t monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void spawn(struct early *e) {
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC)) return;
    if (pipe2(out, O_CLOEXEC)) { close(in[0]); close(in[1]); return; }
    if (pipe2(err, O_CLOEXEC)) { close(in[0]); close(in[1]); close(out[0]); close(out[1]); return; }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err[1], 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);
    char *empty[] = {NULL};
    pid_t pid;
    uint64_t start = monotonic_ns();
    int rc = posix_spawn(&pid, e->argv[0], &actions, &attr, e->argv, empty);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    close(in[0]); close(out[1]); close(err[1]);
    if (rc != 0) { close(in[1]); close(out[0]); close(err[0]); return; }
    /* The block fits in the pipe (64 KiB): written whole now, as PostRunner does, then EOF. */
    if (env_len > 0 && write(in[1], env_block, env_len) != (ssize_t)env_len) {
        kill(-pid, SIGKILL);
        waitpid(pid, NULL, 0);
        close(in[1]); close(out[0]); close(err[0]);
        return;
    }
    close(in[1]);
    e->child = (sentinel_early_child){.pid = pid, .out_fd = out[0], .err_fd = err[0], .start_ns = start};
    child_count++;
}

static void discard_untaken(void) {
    pthread_mutex_lock(&lock);
    for (int i = 0; i < child_count; i++) {
        struct early *e = &children[i];
        if (e->taken) continue;
        e->taken = 1;
        kill(-e->child.pid, SIGKILL);
        close(e->child.out_fd);
        close(e->child.err_fd);
        while (waitpid(e->child.pid, NULL, 0) < 0 && errno == EINTR) {}
    }
    pthread_mutex_unlock(&lock);
}

/* 101: before the static Swift runtime's and Foundation's own constructors in this executable. */
__attribute__((constructor(101))) static void start_early_post(int argc, char **argv, char **envp) {
    (void)envp;
    if (argc < 2 || strcmp(argv[1], "post") != 0) return;
    const char *libraries[MAX_LIBRARIES], *pairs[MAX_PAIRS];
    int nlib = 0, npair = 0;
    for (int i = 2; i < argc;) {
        const char *option = argv[i];
        if (strcmp(option, "--expect-fips") == 0) { i++; continue; }
        if (i + 1 >= argc || argv[i + 1][0] == '-') return;
        const char *value = argv[i + 1];
        if (strcmp(option, "--env") == 0) {
            const char *eq = strchr(value, '=');
            if (!eq || eq == value || npair == MAX_PAIRS) return;
            pairs[npair++] = value;
        } else if (strcmp(option, "--libcrypto") == 0) {
            int seen = 0;
            for (int k = 0; k < nlib; k++) seen |= strcmp(libraries[k], value) == 0;
            if (!seen) {
                if (nlib == MAX_LIBRARIES) return;
                libraries[nlib++] = value;
            }
        } else if (strcmp(option, "--timeout") && strcmp(option, "--format") && strcmp(option, "--fail-on") &&
                   strcmp(option, "--name")) {
            return;
        }
        i += 2;
    }
    if (nlib == 0) libraries[nlib++] = "libcrypto.so.3";

    /* The environment as PostRequest builds it: a later --env of a key wins; sorted by key. */
    const char *kept[MAX_PAIRS];
    int nkept = 0;
    for (int i = npair - 1; i >= 0; i--) {
        size_t key = strcspn(pairs[i], "=");
        int later = 0;
        for (int k = 0; k < nkept; k++) later |= strcspn(kept[k], "=") == key && memcmp(kept[k], pairs[i], key) == 0;
        if (!later && !withheld(pairs[i], key)) kept[nkept++] = pairs[i];
    }
    qsort(kept, (size_t)nkept, sizeof kept[0], by_key);
    for (int i = 0; i < nkept; i++) {
        size_t n = strlen(kept[i]) + 1;
        if (env_len + n > sizeof env_block) return;
        memcpy(env_block + env_len, kept[i], n);
        env_len += n;
    }

    char *probe = locate_probe();
    if (!probe) return;
    /* PostRunner ignores SIGPIPE before it feeds a child; a child dead before reading must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < nlib; i++) {
        struct early *e = &children[child_count];
        e->argv[0] = probe;
        e->argv[1] = "--env-stdin";
        e->argv[2] = (char *)libraries[i];
        e->argv[3] = NULL;
        spawn(e);
    }
    if (child_count > 0) atexit(discard_untaken);
}

int sentinel_early_post_take(const char *const *argv, size_t argc, const void *env, size_t len,
                             sentinel_early_child *child) {
    int found = 0;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < child_count && !found; i++) {
        struct early *e = &children[i];
        if (e->taken || argc != 3 || len != env_len || (len && memcmp(env, env_block, len))) continue;
        int same = 1;
        for (size_t k = 0; k < 3; k++) same &= strcmp(argv[k], e->argv[k]) == 0;
        if (!same) continue;
        e->taken = 1;
        *child = e->child;
        found = 1;
    }
    pthread_mutex_unlock(&lock);
    return found;
}
