#ifndef CZLIB_SHIM_H
#define CZLIB_SHIM_H
/* zlib streams, two ways: zlib's own inflate, which can stop after a member's first bytes, and
   libdeflate's, which inflates a whole buffer at once and faster (docs/BENCHMARKS.md, issue 19). */
#include <zlib.h>
#include <libdeflate.h>
/* inflateInit is a macro over inflateInit_, which Swift cannot call. */
static inline int czlib_inflate_init(z_stream *stream) { return inflateInit(stream); }
#endif
