/* common.c — error messages, logging, aligned allocation, clock, CRC-32. */
#include "common.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local char err_msg[1024];

const char *crn_strerror(int err) {
    switch (err) {
    case CRN_OK: return "success";
    case CRN_ENOMEM: return "out of memory";
    case CRN_EIO: return "input/output error";
    case CRN_EINVAL: return "invalid argument";
    case CRN_EUTF8: return "invalid UTF-8";
    case CRN_EREGEX: return "bad regular expression";
    case CRN_EFORMAT: return "malformed file";
    case CRN_ECHECKSUM: return "checksum mismatch";
    case CRN_EEMPTY: return "empty input";
    case CRN_ERANGE: return "value out of range";
    case CRN_ELIMIT: return "regex match limit exceeded";
    case CRN_ENONFINITE: return "non-finite value";
    case CRN_EINTR: return "interrupted";
    case CRN_ENOTFOUND: return "not found";
    default: return "unknown error";
    }
}

int crn_error_set(int err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_msg, sizeof err_msg, fmt, ap);
    va_end(ap);
    return err;
}

int crn_error_prefix(int err, const char *fmt, ...) {
    char old[sizeof err_msg];
    memcpy(old, err_msg, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err_msg, sizeof err_msg, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof err_msg)
        snprintf(err_msg + n, sizeof err_msg - (size_t)n, "%s%s", old[0] ? ": " : "", old);
    return err;
}

const char *crn_error_message(void) { return err_msg; }

void crn_error_clear(void) { err_msg[0] = 0; }

int crn_debug_enabled(void) {
    static int cached = -1;
    if (cached < 0) {
        const char *e = getenv("CRN_DEBUG");
        cached = e && *e && strcmp(e, "0") != 0;
    }
    return cached;
}

void crn_log_at(const char *file, int line, const char *fmt, ...) {
    const char *base = strrchr(file, '/');
    fprintf(stderr, "[%s:%d] ", base ? base + 1 : file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void *crn_calloc(size_t n, size_t size) {
    size_t bytes;
    if (crn_mul_size(n, size, &bytes)) return NULL;
    if (bytes == 0) bytes = 1;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes) return NULL;
    void *p = aligned_alloc(64, rounded);
    if (p) memset(p, 0, rounded);
    return p;
}

void crn_free(void *p) { free(p); }

double crn_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

uint32_t crn_crc32(uint32_t crc, const void *p, size_t n) {
    static uint32_t table[256];
    static int ready;
    if (!ready) { /* benign race: every thread writes the same values */
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    const uint8_t *b = p;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ b[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}
