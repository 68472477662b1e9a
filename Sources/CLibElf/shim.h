#ifndef CLIBELF_SHIM_H
#define CLIBELF_SHIM_H
#include <stddef.h>
#include <libelf.h>
#include <gelf.h>
#include <elf.h>
/* glibc's memmem (a GNU extension Swift's Glibc module leaves undeclared): the fast search for
 * OpenSSL's build strings in read-only data. */
extern void *memmem(const void *haystack, size_t haystacklen, const void *needle, size_t needlelen);
#endif
