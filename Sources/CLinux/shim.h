/* Linux calls that Swift's Glibc module does not expose (they sit behind _GNU_SOURCE there). */
#ifndef CLINUX_SHIM_H
#define CLINUX_SHIM_H
#include <spawn.h>
#include <sys/syscall.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/xattr.h> /* not in Swift's Glibc module at all: l/f{list,get,set}xattr */

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

/* renameat2(2) (Linux 3.15): glibc declares it only under _GNU_SOURCE. flags: RENAME_NOREPLACE
   fails with EEXIST instead of replacing; RENAME_EXCHANGE swaps the two names in one step. */
#define SENTINEL_RENAME_NOREPLACE 1
#define SENTINEL_RENAME_EXCHANGE 2
static inline int sentinel_renameat2(int olddfd, const char *oldpath, int newdfd, const char *newpath, unsigned flags) {
    return (int)syscall(SYS_renameat2, olddfd, oldpath, newdfd, newpath, flags);
}

/* syncfs(2) (_GNU_SOURCE): writes out everything of the file system `fd` is on; -1 with errno set. */
static inline int sentinel_syncfs(int fd) { return (int)syscall(SYS_syncfs, fd); }

/* copy_file_range(2) (_GNU_SOURCE in glibc): the data moves inside the kernel, or is shared on file
   systems that can. At the given offsets (advanced), or a NULL one's descriptor offset. Bytes copied,
   0 at the end of `in`, -1 with errno set. */
static inline long sentinel_copy_file_range(int in, int64_t *in_offset, int out, int64_t *out_offset, size_t length) {
    return (long)syscall(SYS_copy_file_range, in, in_offset, out, out_offset, length, 0u);
}

/* ioctl(FICLONE) (Btrfs, XFS with reflink, bcachefs): `dst` shares all of `src`'s extents, copied
   only when written. ioctl is variadic, which Swift cannot call. */
#define SENTINEL_FICLONE 0x40049409 /* _IOW(0x94, 9, int) */
static inline int sentinel_ficlone(int dst, int src) { return ioctl(dst, SENTINEL_FICLONE, src); }

/* lseek whences for sparse files (_GNU_SOURCE): the next offset in data, the next in a hole. */
#define SENTINEL_SEEK_DATA 3
#define SENTINEL_SEEK_HOLE 4

/* open(2) flag (_GNU_SOURCE): reading does not update the file's atime (owner or CAP_FOWNER only). */
#define SENTINEL_O_NOATIME 01000000
/* open(2) flag (_GNU_SOURCE): a descriptor that only names the file, for the *at calls. */
#define SENTINEL_O_PATH 010000000
#endif
