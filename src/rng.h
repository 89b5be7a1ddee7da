/* rng.h — an explicit, seedable random number generator (xoshiro256**).
 * The whole state is a plain struct: copy it, save it in a checkpoint,
 * restore it, and the same stream continues. Seeding uses splitmix64. */
#ifndef CRN_RNG_H
#define CRN_RNG_H

#include <stdint.h>

typedef struct crn_rng {
    uint64_t s[4];
} crn_rng;

void crn_rng_seed(crn_rng *r, uint64_t seed);
uint64_t crn_rng_u64(crn_rng *r);
/* uniform in [0, 1) with 53 (double) or 24 (float) random bits */
double crn_rng_uniform(crn_rng *r);
float crn_rng_uniformf(crn_rng *r);
/* uniform integer in [0, n), n > 0, unbiased */
uint64_t crn_rng_below(crn_rng *r, uint64_t n);

#endif
