/* rng.c — xoshiro256** (Blackman & Vigna), seeded through splitmix64. */
#include "rng.h"

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void crn_rng_seed(crn_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t crn_rng_u64(crn_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double crn_rng_uniform(crn_rng *r) { return (double)(crn_rng_u64(r) >> 11) * 0x1.0p-53; }

float crn_rng_uniformf(crn_rng *r) { return (float)(crn_rng_u64(r) >> 40) * 0x1.0p-24f; }

uint64_t crn_rng_below(crn_rng *r, uint64_t n) {
    /* rejection sampling: reject the low values that would bias the modulo */
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t x = crn_rng_u64(r);
        if (x >= threshold) return x % n;
    }
}
