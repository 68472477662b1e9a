/* Linux calls that Swift's Glibc module does not expose (they sit behind _GNU_SOURCE there). */
#ifndef CLINUX_SHIM_H
#define CLINUX_SHIM_H
#include <spawn.h>
#include <sys/syscall.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <unistd.h>

/* Behind _GNU_SOURCE in glibc (>= 2.34 and 2.9): declared here so Swift sees them. */
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);
extern int pipe2(int fds[2], int flags);

/* pidfd_open(2) (Linux 5.3): glibc wraps it only from 2.36, in <sys/pidfd.h>. A close-on-exec
   descriptor that polls readable once `pid` has exited; -1 with errno set. */
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
static inline int sentinel_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

/* struct epoll_event is packed on x86-64: filled and read here rather than through Swift's import. */
static inline int sentinel_epoll_add(int ep, int fd, uint64_t key) {
    struct epoll_event e = { .events = EPOLLIN, .data.u64 = key };
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
}

/* The keys of at most `max` (<= 256) readable descriptors of `ep`, without waiting; -1 with errno set. */
static inline int sentinel_epoll_ready(int ep, uint64_t *keys, int max) {
    struct epoll_event events[256];
    int n = epoll_wait(ep, events, max < 256 ? max : 256, 0);
    for (int i = 0; i < n; i++) keys[i] = events[i].data.u64;
    return n;
}
#endif
