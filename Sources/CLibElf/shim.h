#ifndef CLIBELF_SHIM_H
#define CLIBELF_SHIM_H
#include <stddef.h>
#include <libelf.h>
#include <gelf.h>
#include <elf.h>
/* glibc's memmem (a GNU extension Swift's Glibc module leaves undeclared): the fast search for
 * OpenSSL's build strings in read-only data. */
extern void *memmem(const void *haystack, size_t haystacklen, const void *needle, size_t needlelen);

#if defined(__x86_64__) || defined(__i386__)
#include <emmintrin.h>
#include <immintrin.h>
#include <cpuid.h>
#endif

/* The first offset i (counted from p) with p[i] == 'D' and p[i + 5] == '"' or 'n', the two ends of the
 * `DIR: "` that OpenSSL's OPENSSLDIR, MODULESDIR and ENGINESDIR build strings share (`DIR: n/a` in
 * BoringSSL and AWS-LC); n when there is none. Every ELF file's read-only data goes through it (150 MB under /usr/lib), so 64 bytes a step
 * with SSE2 and one branch: Swift's any() on SIMD masks compiled to a call per 16 bytes where the
 * loop was unrolled. */
#if defined(__SSE2__)
static inline __m128i clibelf_quote_or_n(__m128i v, __m128i q, __m128i nn) {
    return _mm_or_si128(_mm_cmpeq_epi8(v, q), _mm_cmpeq_epi8(v, nn));
}
#endif
static inline size_t clibelf_next_dir_candidate(const unsigned char *p, size_t n) {
    size_t i = 0;
#if defined(__SSE2__)
    const __m128i d = _mm_set1_epi8('D'), q = _mm_set1_epi8('"'), nn = _mm_set1_epi8('n');
    while (i + 69 <= n) {
        __m128i m0 = _mm_and_si128(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(p + i)), d),
                                   clibelf_quote_or_n(_mm_loadu_si128((const __m128i *)(p + i + 5)), q, nn));
        __m128i m1 = _mm_and_si128(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(p + i + 16)), d),
                                   clibelf_quote_or_n(_mm_loadu_si128((const __m128i *)(p + i + 21)), q, nn));
        __m128i m2 = _mm_and_si128(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(p + i + 32)), d),
                                   clibelf_quote_or_n(_mm_loadu_si128((const __m128i *)(p + i + 37)), q, nn));
        __m128i m3 = _mm_and_si128(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(p + i + 48)), d),
                                   clibelf_quote_or_n(_mm_loadu_si128((const __m128i *)(p + i + 53)), q, nn));
        if (_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(m0, m1), _mm_or_si128(m2, m3))) != 0) {
            unsigned long long bits = (unsigned long long)(unsigned)_mm_movemask_epi8(m0)
                | (unsigned long long)(unsigned)_mm_movemask_epi8(m1) << 16
                | (unsigned long long)(unsigned)_mm_movemask_epi8(m2) << 32
                | (unsigned long long)(unsigned)_mm_movemask_epi8(m3) << 48;
            return i + (size_t)__builtin_ctzll(bits);
        }
        i += 64;
    }
#endif
    for (; i + 5 < n; i++) {
        if (p[i] == 'D' && (p[i + 5] == '"' || p[i + 5] == 'n')) return i;
    }
    return n;
}

#if defined(__x86_64__)
/* Whether the CPU and the kernel allow AVX2 (CPUID and XGETBV, no library needed). */
static inline int clibelf_have_avx2(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE) || !(c & bit_AVX)) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6) != 6) return 0;
    if (__get_cpuid_max(0, 0) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b & bit_AVX2) != 0;
}

__attribute__((target("avx2")))
static inline __m256i clibelf_quote_or_n256(__m256i v, __m256i q, __m256i nn) {
    return _mm256_or_si256(_mm256_cmpeq_epi8(v, q), _mm256_cmpeq_epi8(v, nn));
}

/* clibelf_next_dir_candidate with 32-byte compares, for CPUs that have AVX2 (the caller checks). */
__attribute__((target("avx2")))
static inline size_t clibelf_next_dir_candidate_avx2(const unsigned char *p, size_t n) {
    size_t i = 0;
    const __m256i d = _mm256_set1_epi8('D'), q = _mm256_set1_epi8('"'), nn = _mm256_set1_epi8('n');
    while (i + 69 <= n) {
        __m256i m0 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)(p + i)), d),
                                      clibelf_quote_or_n256(_mm256_loadu_si256((const __m256i *)(p + i + 5)), q, nn));
        __m256i m1 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)(p + i + 32)), d),
                                      clibelf_quote_or_n256(_mm256_loadu_si256((const __m256i *)(p + i + 37)), q, nn));
        if (!_mm256_testz_si256(_mm256_or_si256(m0, m1), _mm256_or_si256(m0, m1))) {
            unsigned long long bits = (unsigned long long)(unsigned)_mm256_movemask_epi8(m0)
                | (unsigned long long)(unsigned)_mm256_movemask_epi8(m1) << 32;
            return i + (size_t)__builtin_ctzll(bits);
        }
        i += 64;
    }
    return i + clibelf_next_dir_candidate(p + i, n - i);
}
#endif
#endif
