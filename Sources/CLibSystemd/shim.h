#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

/*
 * libsystemd is opened on first use instead of being linked: a linked libsystemd.so.0 (and its six
 * dependencies: libgcrypt, libgpg-error, liblzma, libzstd, liblz4, libcap) is loaded and relocated
 * at the start of every crypto-sentinel run, ~0.5-0.8 ms of a `post` or `scan` that never calls it.
 * Only the daemon does (sd_notify, sd_journal_sendv, sd_listen_fds), and it pays that once.
 * Without libsystemd.so.0 each call fails with -ENOSYS, as if no service manager were there.
 * The headers give the prototypes and constants only.
 */
static inline void *sentinel_libsystemd_symbol(const char *name) {
    static void *handle;
    void *h = __atomic_load_n(&handle, __ATOMIC_ACQUIRE);
    if (!h) {
        /* dlopen is reference-counted: two threads racing here get the same handle. */
        h = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
        if (!h) return NULL;
        __atomic_store_n(&handle, h, __ATOMIC_RELEASE);
    }
    return dlsym(h, name);
}

#define SENTINEL_SD_FUNCTION(fn) \
    static __typeof__(fn) *p; \
    __typeof__(fn) *f = __atomic_load_n(&p, __ATOMIC_ACQUIRE); \
    if (!f) { \
        f = (__typeof__(fn) *)sentinel_libsystemd_symbol(#fn); \
        if (!f) return -ENOSYS; \
        __atomic_store_n(&p, f, __ATOMIC_RELEASE); \
    }

static inline int sentinel_sd_notify(int unset_environment, const char *state) {
    SENTINEL_SD_FUNCTION(sd_notify)
    return f(unset_environment, state);
}

static inline int sentinel_sd_watchdog_enabled(int unset_environment, uint64_t *usec) {
    SENTINEL_SD_FUNCTION(sd_watchdog_enabled)
    return f(unset_environment, usec);
}

static inline int sentinel_sd_listen_fds(int unset_environment) {
    SENTINEL_SD_FUNCTION(sd_listen_fds)
    return f(unset_environment);
}

static inline int sentinel_sd_is_socket_unix(int fd, int type, int listening, const char *path, size_t length) {
    SENTINEL_SD_FUNCTION(sd_is_socket_unix)
    return f(fd, type, listening, path, length);
}

static inline int sentinel_sd_journal_sendv(const struct iovec *iov, int n) {
    SENTINEL_SD_FUNCTION(sd_journal_sendv)
    return f(iov, n);
}
