/* fuzz.h — shared by the libFuzzer targets: invariant checks that abort (so
 * libFuzzer reports and saves the input) and an independent reference UTF-8
 * scanner the library's answers are compared with. */
#ifndef CRN_FUZZ_H
#define CRN_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* A violated invariant: say which and where (with the library's last error
 * message, which usually names the byte), then abort for libFuzzer. */
#define FUZZ_CHECK(cond, ...)                                                              \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "\n%s:%d: invariant failed: %s\n  ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fprintf(stderr, "\n  last library error: %s\n", crn_error_message());          \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

/* An error return must carry a message. */
#define FUZZ_CHECK_ERR(rc, what)                                                                   \
    FUZZ_CHECK((rc) < 0 && (rc) >= -13 && crn_error_message()[0] != 0,                             \
               "%s returned %d (%s) with message '%s'", what, (int)(rc), crn_strerror((int)(rc)), \
               crn_error_message())

/* Reference UTF-8 (Unicode 15, table 3-7), written independently of
 * src/utf8.c. At s (n > 0 bytes): returns the length 1..4 of a well-formed
 * sequence and its code point in *cp, or 0 with *sub = the length of the
 * maximal subpart of an ill-formed sequence (>= 1). */
static inline int ref_utf8_seq(const uint8_t *s, size_t n, uint32_t *cp, size_t *sub) {
    static const struct { uint8_t lo_lead, hi_lead, len, lo2, hi2; } rows[] = {
        {0x00, 0x7F, 1, 0, 0},       {0xC2, 0xDF, 2, 0x80, 0xBF}, {0xE0, 0xE0, 3, 0xA0, 0xBF},
        {0xE1, 0xEC, 3, 0x80, 0xBF}, {0xED, 0xED, 3, 0x80, 0x9F}, {0xEE, 0xEF, 3, 0x80, 0xBF},
        {0xF0, 0xF0, 4, 0x90, 0xBF}, {0xF1, 0xF3, 4, 0x80, 0xBF}, {0xF4, 0xF4, 4, 0x80, 0x8F},
    };
    uint8_t b = s[0];
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        if (b < rows[r].lo_lead || b > rows[r].hi_lead) continue;
        size_t len = rows[r].len;
        if (len == 1) {
            *cp = b;
            return 1;
        }
        uint32_t c = b & (len == 2 ? 0x1Fu : len == 3 ? 0x0Fu : 0x07u);
        for (size_t i = 1; i < len; i++) {
            uint8_t lo = i == 1 ? rows[r].lo2 : 0x80, hi = i == 1 ? rows[r].hi2 : 0xBF;
            if (i >= n || s[i] < lo || s[i] > hi) {
                *sub = i;
                return 0;
            }
            c = c << 6 | (s[i] & 0x3Fu);
        }
        *cp = c;
        return (int)len;
    }
    *sub = 1;
    return 0;
}

/* Offset of the first ill-formed sequence or NUL byte; n if none. */
static inline size_t ref_utf8_first_bad(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t sub;
        int k = ref_utf8_seq(s + i, n - i, &cp, &sub);
        if (k == 0 || cp == 0) return i;
        i += (size_t)k;
    }
    return n;
}

static inline int ref_utf8_valid(const uint8_t *s, size_t n) { return ref_utf8_first_bad(s, n) == n; }

/* Valid UTF-8 where NUL bytes are allowed (decoder output may contain U+0000
 * only if the text did; the library's own validator calls NUL invalid). */
static inline int ref_utf8_wellformed(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t sub;
        int k = ref_utf8_seq(s + i, n - i, &cp, &sub);
        if (k == 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

static inline void *fuzz_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) abort();
    return p;
}

#endif
