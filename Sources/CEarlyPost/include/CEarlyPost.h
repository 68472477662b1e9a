#ifndef CEARLYPOST_H
#define CEARLYPOST_H
#include <stddef.h>
#include <stdint.h>

/* A probe child that the launcher started for `crypto-sentinel post` before it exec'd the Swift
 * binary (whose loading and start take ~3 ms), so the POST runs meanwhile. */
typedef struct {
    int pid;
    int out_fd;
    int err_fd;
    uint64_t start_ns; /* CLOCK_MONOTONIC at the spawn */
} sentinel_early_child;

/* Launcher: starts the children a simple `post` line asks for and describes them in
 * SENTINEL_EARLY_POST for the binary it execs next; returns how many (0: none, any other line). */
int sentinel_early_post_start(int argc, char **argv);

/* Launcher: kills and reaps the children it started (the exec failed). */
void sentinel_early_post_discard(void);

/* Swift binary, first thing in main: takes over the children SENTINEL_EARLY_POST describes when they
 * are this process's children, their fds pipes, and what this command line asks for; removes the
 * variable either way. The ones nobody takes are killed and reaped at exit. */
void sentinel_early_post_adopt(int argc, char **argv);

/* Hands over the child started with exactly this probe, argv and environment block (the bytes the
 * probe reads on stdin), and returns 1; 0 when there is none. Each child is handed over once; the
 * ones nobody takes are killed and reaped at exit. */
int sentinel_early_post_take(const char *const *argv, size_t argc, const void *env_block, size_t env_len,
                             sentinel_early_child *child);

#endif
