/* Linux calls that Swift's Glibc module does not expose (they sit behind _GNU_SOURCE there). */
#ifndef CLINUX_SHIM_H
#define CLINUX_SHIM_H
#include <spawn.h>
#include <unistd.h>

/* Behind _GNU_SOURCE in glibc (>= 2.34 and 2.9): declared here so Swift sees them. */
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);
extern int pipe2(int fds[2], int flags);

#endif
