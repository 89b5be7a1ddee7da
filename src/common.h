/* common.h — error codes, the thread-local error message, logging, aligned
 * allocation. Every library function returns 0 (or a count) on success and a
 * negative CRN_E* code on failure, after recording a one-line message with
 * crn_error_set(); only the CLI prints it and exits. */
#ifndef CRN_COMMON_H
#define CRN_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum crn_err {
    CRN_OK = 0,
    CRN_ENOMEM = -1,    /* allocation failed */
    CRN_EIO = -2,       /* open/read/write/fsync/rename failed (errno kept in the message) */
    CRN_EINVAL = -3,    /* bad argument or option value */
    CRN_EUTF8 = -4,     /* invalid UTF-8 (message names file:line:col and byte offset) */
    CRN_EREGEX = -5,    /* pattern does not compile (message shows the pattern and offset) */
    CRN_EFORMAT = -6,   /* model/fixture file malformed: bad magic, version, sizes, truncation */
    CRN_ECHECKSUM = -7, /* a section's checksum does not match */
    CRN_EEMPTY = -8,    /* empty input (corpus, prompt, ...) */
    CRN_ERANGE = -9,    /* size/value out of the supported range or overflow */
    CRN_ELIMIT = -10,   /* PCRE2 match/depth limit hit */
    CRN_ENONFINITE = -11, /* NaN or Inf in a loss or gradient */
    CRN_EINTR = -12,    /* interrupted by a signal (Ctrl-C) */
    CRN_ENOTFOUND = -13,/* missing file or key */
};

/* Short name of an error code ("invalid UTF-8", ...). Never NULL. */
const char *crn_strerror(int err);

/* Record the message for the error being returned (printf-style, one line,
 * no trailing newline) and return err, so callers can write
 *     return crn_error_set(CRN_EIO, "%s: %s", path, strerror(errno));     */
int crn_error_set(int err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* The last recorded message of this thread ("" if none). */
const char *crn_error_message(void);
/* Prefix the current message: "ctx: <old message>". Returns err. */
int crn_error_prefix(int err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void crn_error_clear(void);

/* Debug/diagnostic logging with [file:line] to stderr; CRN_DEBUG=1 in the
 * environment enables crn_debug(). */
void crn_log_at(const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
int crn_debug_enabled(void);
#define crn_log(...) crn_log_at(__FILE__, __LINE__, __VA_ARGS__)
#define crn_debug(...) do { if (crn_debug_enabled()) crn_log_at(__FILE__, __LINE__, __VA_ARGS__); } while (0)

/* 64-byte aligned, zero-filled allocation; NULL on failure or overflow of
 * n * size. crn_free(NULL) is a no-op. */
void *crn_calloc(size_t n, size_t size);
void crn_free(void *p);

/* Overflow-checked size arithmetic: return 0 and store the result, or -1. */
static inline int crn_mul_size(size_t a, size_t b, size_t *out) {
    if (a && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}
static inline int crn_add_size(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return -1;
    *out = a + b;
    return 0;
}

/* "1234567" -> "1,234,567" into buf (at least 32 bytes); returns buf. */
const char *crn_fmt_count(char *buf, uint64_t v);

/* Does path exist (stat succeeds)? */
int crn_file_exists(const char *path);

/* Monotonic wall clock in seconds. */
double crn_now(void);

/* CRC-32 (IEEE 802.3, zlib's polynomial), chainable: crc = crn_crc32(crc, p, n),
 * starting from 0. */
uint32_t crn_crc32(uint32_t crc, const void *p, size_t n);

/* A target id that is not counted (loss, gradient, targets): padding of the
 * validation layout (corpus.h), ignored targets of a window (model.h). */
#define CRN_IGNORE 0xffffffffu

#define CRN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define CRN_MIN(a, b) ((a) < (b) ? (a) : (b))
#define CRN_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
