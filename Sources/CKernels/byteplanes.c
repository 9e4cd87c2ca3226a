// Byte-plane transforms and the XXH64 checksum of the compressed container (formats/compressed.md).
#include "CKernels.h"
#include <string.h>

// MARK: Byte planes

static inline uint16_t rotl16(uint16_t x) { return (uint16_t)((x << 1) | (x >> 15)); }
static inline uint16_t rotr16(uint16_t x) { return (uint16_t)((x >> 1) | (x << 15)); }
static inline uint32_t rotl32(uint32_t x) { return (x << 1) | (x >> 31); }
static inline uint32_t rotr32(uint32_t x) { return (x >> 1) | (x << 31); }
static inline uint64_t rotl64(uint64_t x) { return (x << 1) | (x >> 63); }
static inline uint64_t rotr64(uint64_t x) { return (x >> 1) | (x << 63); }

void qk_planes_split(const void *source, size_t count, int width, int rotate, uint8_t *planes) {
    const uint8_t *s = (const uint8_t *)source;
    switch (width) {
    case 2: {
        uint8_t *p0 = planes, *p1 = planes + count;
        for (size_t i = 0; i < count; i++) {
            uint16_t v; memcpy(&v, s + 2 * i, 2);
            if (rotate) v = rotl16(v);
            p0[i] = (uint8_t)v; p1[i] = (uint8_t)(v >> 8);
        }
        break;
    }
    case 4: {
        uint8_t *p0 = planes, *p1 = planes + count, *p2 = planes + 2 * count, *p3 = planes + 3 * count;
        for (size_t i = 0; i < count; i++) {
            uint32_t v; memcpy(&v, s + 4 * i, 4);
            if (rotate) v = rotl32(v);
            p0[i] = (uint8_t)v; p1[i] = (uint8_t)(v >> 8); p2[i] = (uint8_t)(v >> 16); p3[i] = (uint8_t)(v >> 24);
        }
        break;
    }
    case 8: {
        for (size_t i = 0; i < count; i++) {
            uint64_t v; memcpy(&v, s + 8 * i, 8);
            if (rotate) v = rotl64(v);
            for (int k = 0; k < 8; k++) planes[(size_t)k * count + i] = (uint8_t)(v >> (8 * k));
        }
        break;
    }
    default:
        memcpy(planes, s, count * (size_t)(width > 0 ? width : 1));
    }
}

void qk_planes_join(const uint8_t *const *planes, size_t count, int width, int rotate, void *destination) {
    uint8_t *d = (uint8_t *)destination;
    switch (width) {
    case 2: {
        const uint8_t *p0 = planes[0], *p1 = planes[1];
        for (size_t i = 0; i < count; i++) {
            uint16_t v = (uint16_t)(p0[i] | (p1[i] << 8));
            if (rotate) v = rotr16(v);
            memcpy(d + 2 * i, &v, 2);
        }
        break;
    }
    case 4: {
        const uint8_t *p0 = planes[0], *p1 = planes[1], *p2 = planes[2], *p3 = planes[3];
        for (size_t i = 0; i < count; i++) {
            uint32_t v = (uint32_t)p0[i] | ((uint32_t)p1[i] << 8) | ((uint32_t)p2[i] << 16) | ((uint32_t)p3[i] << 24);
            if (rotate) v = rotr32(v);
            memcpy(d + 4 * i, &v, 4);
        }
        break;
    }
    case 8: {
        for (size_t i = 0; i < count; i++) {
            uint64_t v = 0;
            for (int k = 0; k < 8; k++) v |= (uint64_t)planes[k][i] << (8 * k);
            if (rotate) v = rotr64(v);
            memcpy(d + 8 * i, &v, 8);
        }
        break;
    }
    default:
        memcpy(d, planes[0], count * (size_t)(width > 0 ? width : 1));
    }
}

// MARK: XXH64 (Yann Collet's xxHash, 64-bit variant; the reference algorithm, little-endian reads)

static const uint64_t P1 = 0x9E3779B185EBCA87ULL;
static const uint64_t P2 = 0xC2B2AE3D27D4EB4FULL;
static const uint64_t P3 = 0x165667B19E3779F9ULL;
static const uint64_t P4 = 0x85EBCA77C2B2AE63ULL;
static const uint64_t P5 = 0x27D4EB2F165667C5ULL;

static inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static inline uint64_t read64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline uint32_t read32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t xround(uint64_t acc, uint64_t input) {
    acc += input * P2;
    acc = rotl(acc, 31);
    return acc * P1;
}
static inline uint64_t merge(uint64_t acc, uint64_t value) {
    acc ^= xround(0, value);
    return acc * P1 + P4;
}

uint64_t qk_xxh64(const void *data, size_t length, uint64_t seed) {
    const uint8_t *p = (const uint8_t *)data;
    const uint8_t *end = p + length;
    uint64_t h;
    if (length >= 32) {
        uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
        const uint8_t *limit = end - 32;
        do {
            v1 = xround(v1, read64(p)); v2 = xround(v2, read64(p + 8));
            v3 = xround(v3, read64(p + 16)); v4 = xround(v4, read64(p + 24));
            p += 32;
        } while (p <= limit);
        h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
        h = merge(h, v1); h = merge(h, v2); h = merge(h, v3); h = merge(h, v4);
    } else {
        h = seed + P5;
    }
    h += (uint64_t)length;
    while (p + 8 <= end) {
        h ^= xround(0, read64(p));
        h = rotl(h, 27) * P1 + P4;
        p += 8;
    }
    if (p + 4 <= end) {
        h ^= (uint64_t)read32(p) * P1;
        h = rotl(h, 23) * P2 + P3;
        p += 4;
    }
    while (p < end) {
        h ^= (uint64_t)(*p) * P5;
        h = rotl(h, 11) * P1;
        p++;
    }
    h ^= h >> 33; h *= P2; h ^= h >> 29; h *= P3; h ^= h >> 32;
    return h;
}
