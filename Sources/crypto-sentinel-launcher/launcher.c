/* `crypto-sentinel`: starts the probe children of a simple `post` line (early_post.c), then execs the
 * Swift binary, crypto-sentinel-core, beside it with the same arguments. Loading that 100 MB static
 * binary and starting its runtime take ~3 ms, as long as a non-FIPS POST itself; done here, in a
 * program that starts in ~0.3 ms, the POST runs meanwhile. Every other command line is exec'd as is. */
#define _GNU_SOURCE
#include "CEarlyPost.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    unsetenv("SENTINEL_EARLY_POST");   /* only ever what this launcher started */
    /* Descriptors 0-2 open (on /dev/null when closed): no pipe below may land on one of them. */
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) < 0) return 2;
    char core[PATH_MAX + 1];
    ssize_t n = readlink("/proc/self/exe", core, PATH_MAX);
    char *slash = n > 0 ? memrchr(core, '/', (size_t)n) : NULL;
    if (!slash || (size_t)(slash + 1 - core) + sizeof "crypto-sentinel-core" > sizeof core) {
        fprintf(stderr, "crypto-sentinel: cannot find its own executable in /proc/self/exe\n");
        return 2;
    }
    strcpy(slash + 1, "crypto-sentinel-core");
    sentinel_early_post_start(argc, argv);
    execv(core, argv);
    int e = errno;
    sentinel_early_post_discard();
    fprintf(stderr, "crypto-sentinel: cannot run %s: %s (it is installed beside this launcher)\n", core, strerror(e));
    return 2;
}
