/* Linux calls that Swift's Glibc module does not expose (they sit behind _GNU_SOURCE there). */
#ifndef CLINUX_SHIM_H
#define CLINUX_SHIM_H
#include <fcntl.h>
#include <linux/memfd.h>
#include <sys/syscall.h>
#include <errno.h>
#include <spawn.h>
#include <unistd.h>

/* Behind _GNU_SOURCE in glibc (>= 2.34 and 2.9): declared here so Swift sees them. */
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);
extern int pipe2(int fds[2], int flags);

/* Glibc's names for these need _GNU_SOURCE, and <linux/fcntl.h> clashes with <fcntl.h>: the kernel's values. */
#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_SEAL_WRITE 0x0008
#endif

/* A memfd holding exactly these bytes, sealed against any change; -1 with errno set on failure. */
static inline int sentinel_sealed_memfd(const char *name, const void *bytes, size_t length) {
    int fd = (int)syscall(SYS_memfd_create, name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -1;
    size_t done = 0;
    while (done < length) {
        ssize_t n = write(fd, (const char *)bytes + done, length - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) { close(fd); return -1; }
        done += (size_t)n;
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) { close(fd); return -1; }
    return fd;
}
#endif
