/* `crypto-sentinel post` on a simple command line (only --env, --libcrypto, --timeout, --expect-fips,
 * --format, --fail-on, --name, each as `--option value`) has its probe children started by the
 * launcher (Sources/crypto-sentinel-launcher), a small C program, before it execs the Swift binary:
 * the dynamic loader's ~2 ms on a 100 MB static Swift binary and the runtime's start then run beside
 * the probe instead of before it. The children stay ours across the exec (same process); the Swift
 * side adopts them from SENTINEL_EARLY_POST (pid, pipe fds, spawn time per child).
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { MAX_LIBRARIES = 8, MAX_PAIRS = 64, MAX_ENV_BLOCK = 16384 };
/* SENTINEL_EARLY_POST: "pid:out:err:start_ns" per child, comma-separated (each well under 80 bytes). */
enum { MAX_HANDOFF = MAX_LIBRARIES * 80 };

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

/* The children a simple `post` line asks for (argv and the stdin environment block), not started;
 * the number of them, 0 for any other command line. Both sides compute it: the launcher to start
 * them, the Swift binary to check that what it adopts is what this line asks for. */
static int plan(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "post") != 0) return 0;
    const char *libraries[MAX_LIBRARIES], *pairs[MAX_PAIRS];
    int nlib = 0, npair = 0;
    for (int i = 2; i < argc;) {
        const char *option = argv[i];
        if (strcmp(option, "--expect-fips") == 0) { i++; continue; }
        if (i + 1 >= argc || argv[i + 1][0] == '-') return 0;
        const char *value = argv[i + 1];
        if (strcmp(option, "--env") == 0) {
            const char *eq = strchr(value, '=');
            if (!eq || eq == value || npair == MAX_PAIRS) return 0;
            pairs[npair++] = value;
        } else if (strcmp(option, "--libcrypto") == 0) {
            int seen = 0;
            for (int k = 0; k < nlib; k++) seen |= strcmp(libraries[k], value) == 0;
            if (!seen) {
                if (nlib == MAX_LIBRARIES) return 0;
                libraries[nlib++] = value;
            }
        } else if (strcmp(option, "--timeout") && strcmp(option, "--format") && strcmp(option, "--fail-on") &&
                   strcmp(option, "--name")) {
            return 0;
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
        if (env_len + n > sizeof env_block) return 0;
        memcpy(env_block + env_len, kept[i], n);
        env_len += n;
    }

    char *probe = locate_probe();
    if (!probe) return 0;
    for (int i = 0; i < nlib; i++) {
        children[i].argv[0] = probe;
        children[i].argv[1] = "--env-stdin";
        children[i].argv[2] = (char *)libraries[i];
        children[i].argv[3] = NULL;
    }
    return nlib;
}

int sentinel_early_post_start(int argc, char **argv) {
    int planned = plan(argc, argv);
    if (planned == 0) return 0;
    /* PostRunner ignores SIGPIPE before it feeds a child; a child dead before reading must not kill us
     * (the disposition stays ignored across the exec, until Post.swift restores it). */
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < planned; i++) {
        spawn(&children[child_count]);
        if (child_count != i + 1) break;   /* the table stays dense: index i is library i */
    }
    if (child_count == 0) return 0;
    /* Handed to the exec'd binary: pid:out:err:start per child, in plan order; the read ends stay open. */
    char value[MAX_HANDOFF] = "";
    size_t used = 0;
    for (int i = 0; i < child_count; i++) {
        sentinel_early_child *c = &children[i].child;
        fcntl(c->out_fd, F_SETFD, 0);
        fcntl(c->err_fd, F_SETFD, 0);
        used += (size_t)snprintf(value + used, sizeof value - used, "%s%d:%d:%d:%llu", i ? "," : "", c->pid, c->out_fd,
                                 c->err_fd, (unsigned long long)c->start_ns);
    }
    setenv("SENTINEL_EARLY_POST", value, 1);
    return child_count;
}

void sentinel_early_post_discard(void) { discard_untaken(); }

/* A pipe's read end that this process holds. */
static int is_pipe(int fd) {
    struct stat st;
    return fd > 2 && fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

/* A child of this process, whether or not it has exited yet. */
static int is_our_child(pid_t pid) {
    siginfo_t info = {0};
    return pid > 0 && waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0;
}

void sentinel_early_post_adopt(int argc, char **argv) {
    const char *handed = getenv("SENTINEL_EARLY_POST");
    if (!handed) return;
    char value[MAX_HANDOFF];
    int fits = snprintf(value, sizeof value, "%s", handed) < (int)sizeof value;
    unsetenv("SENTINEL_EARLY_POST");   /* never passed on, whatever it held */
    int planned = plan(argc, argv);
    sentinel_early_child got[MAX_LIBRARIES];
    int n = 0, ok = fits;
    char *save = NULL;
    for (char *item = strtok_r(value, ",", &save); ok && item; item = strtok_r(NULL, ",", &save)) {
        int pid, out, err;
        unsigned long long start;
        char tail;
        if (n == MAX_LIBRARIES || sscanf(item, "%d:%d:%d:%llu%c", &pid, &out, &err, &start, &tail) != 4) ok = 0;
        else got[n++] = (sentinel_early_child){.pid = pid, .out_fd = out, .err_fd = err, .start_ns = start};
    }
    for (int i = 0; ok && i < n; i++)
        ok = is_our_child(got[i].pid) && is_pipe(got[i].out_fd) && is_pipe(got[i].err_fd) && got[i].out_fd != got[i].err_fd;
    /* Only what this very line asks for, in order; anything else was not started for us. */
    if (!ok || n == 0 || n > planned) return;
    for (int i = 0; i < n; i++) {
        fcntl(got[i].out_fd, F_SETFD, FD_CLOEXEC);
        fcntl(got[i].err_fd, F_SETFD, FD_CLOEXEC);
        children[i].child = got[i];
    }
    child_count = n;
    atexit(discard_untaken);
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
