/* byteorder.h — the one little-endian codec of the file formats (the model
 * file, the vocabulary and the training state are all little-endian,
 * fixed-width): put/get of u32, u64, f32 and f64 (IEEE bits) at a byte
 * pointer, whatever the host's byte order. Callers check bounds first. */
#ifndef CRN_BYTEORDER_H
#define CRN_BYTEORDER_H

#include <stdint.h>
#include <string.h>

static inline void crn_le_put_u32(uint8_t *p, uint32_t x) {
    p[0] = (uint8_t)x;
    p[1] = (uint8_t)(x >> 8);
    p[2] = (uint8_t)(x >> 16);
    p[3] = (uint8_t)(x >> 24);
}
static inline void crn_le_put_u64(uint8_t *p, uint64_t x) {
    crn_le_put_u32(p, (uint32_t)x);
    crn_le_put_u32(p + 4, (uint32_t)(x >> 32));
}
static inline void crn_le_put_f32(uint8_t *p, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    crn_le_put_u32(p, u);
}
static inline void crn_le_put_f64(uint8_t *p, double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    crn_le_put_u64(p, u);
}

static inline uint32_t crn_le_get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t crn_le_get_u64(const uint8_t *p) {
    return (uint64_t)crn_le_get_u32(p) | (uint64_t)crn_le_get_u32(p + 4) << 32;
}
static inline float crn_le_get_f32(const uint8_t *p) {
    uint32_t u = crn_le_get_u32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline double crn_le_get_f64(const uint8_t *p) {
    uint64_t u = crn_le_get_u64(p);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

#endif
