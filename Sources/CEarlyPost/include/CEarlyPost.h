#ifndef CEARLYPOST_H
#define CEARLYPOST_H
#include <stddef.h>
#include <stdint.h>

/* A probe child that `crypto-sentinel post` started from an ELF constructor, before the Swift
 * runtime and Foundation initialise (~3 ms of a static binary's start), so the POST runs meanwhile. */
typedef struct {
    int pid;
    int out_fd;
    int err_fd;
    uint64_t start_ns; /* CLOCK_MONOTONIC at the spawn */
} sentinel_early_child;

/* Hands over the child started with exactly this probe, argv and environment block (the bytes the
 * probe reads on stdin), and returns 1; 0 when there is none. Each child is handed over once; the
 * ones nobody takes are killed and reaped at exit. */
int sentinel_early_post_take(const char *const *argv, size_t argc, const void *env_block, size_t env_len,
                             sentinel_early_child *child);

#endif
