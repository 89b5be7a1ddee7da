/* test_crc32.c — crn_crc32 against a bit-by-bit reference, called first from
 * several threads at once. Built with ThreadSanitizer in the plain build
 * (tests/meson.build), where a lazily initialised table is reported as a data
 * race (TSan then exits non-zero); the values are checked in every build.
 * Not a Check binary: it compiles src/common.c itself so that all of it is
 * instrumented. Prints "crc32: N passed, N failed". */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

enum { THREADS = 4, LEN = 4096 };

static uint8_t data[LEN];
static pthread_barrier_t start;
static uint32_t got[THREADS][3];

/* The definition: reflected CRC-32, polynomial 0xedb88320, one bit at a time. */
static uint32_t crc_bitwise(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc & 1) ? 0xedb88320u ^ (crc >> 1) : crc >> 1;
    }
    return ~crc;
}

static void *worker(void *arg) {
    int t = (int)(intptr_t)arg;
    pthread_barrier_wait(&start); /* every thread makes its first call at once */
    got[t][0] = crn_crc32(0, "123456789", 9);
    got[t][1] = crn_crc32(0, data, LEN);
    got[t][2] = crn_crc32(crn_crc32(0, data, 1000), data + 1000, LEN - 1000); /* chained */
    return NULL;
}

int main(void) {
    int pass = 0, fail = 0;
    for (int i = 0; i < LEN; i++) data[i] = (uint8_t)(i * 131u + (i >> 7));
    pthread_t th[THREADS];
    pthread_barrier_init(&start, NULL, THREADS);
    for (int t = 0; t < THREADS; t++) pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t);
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    pthread_barrier_destroy(&start);
    uint32_t want[3] = {0xcbf43926u, crc_bitwise(0, data, LEN), crc_bitwise(0, data, LEN)};
    if (crc_bitwise(0, (const uint8_t *)"123456789", 9) != want[0]) fail++; /* the reference itself */
    for (int t = 0; t < THREADS; t++)
        for (int k = 0; k < 3; k++) {
            if (got[t][k] == want[k]) pass++;
            else {
                fail++;
                printf("FAIL - thread %d value %d: %08x, want %08x\n", t, k, got[t][k], want[k]);
            }
        }
    /* every single byte value (each table entry) against the reference */
    for (int b = 0; b < 256; b++) {
        uint8_t x = (uint8_t)b;
        if (crn_crc32(0, &x, 1) == crc_bitwise(0, &x, 1)) pass++;
        else fail++;
    }
    printf("crc32: %d passed, %d failed\n", pass, fail);
    return fail ? 1 : 0;
}
