// Short probes of this CPU for `quantize fit --device local` (Sources/Fit/LocalProbe.swift): a
// read-only streaming pass (what batch-1 decode is bound by) and dot products over the block
// layouts llama.cpp's CPU backend multiplies (ggml's vec_dot_q8_0_q8_0, vec_dot_q4_0_q8_0,
// vec_dot_q4_K_q8_K and the F16 dot), written here from the GGUF block layouts with the same
// AVX2 arithmetic (sign/maddubs/madd, one float FMA per block or sub-block). They are timing
// kernels: the results are returned only so the compiler cannot drop the work, and the numbers
// need not equal ggml's bit for bit. Each runs on one thread over the buffers it is given; the
// caller splits work over cores.
#include "CKernels.h"
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define QK_PROBE_X86 1
#define QK_PROBE_AVX2 __attribute__((target("avx2,f16c,fma")))
#else
#define QK_PROBE_X86 0
#endif

static int qk_probe_use_avx2(void) {
    static int cached = -1;
    if (cached < 0) cached = qk_cpu_has_f16c_avx2();
    return cached;
}

static float qk_probe_half(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1F, m = h & 0x3FF, u;
    if (e == 0) {
        float f = (float)m * (1.0f / 16777216.0f);
        memcpy(&u, &f, 4);
        u |= sign;
    } else if (e == 31) {
        u = sign | 0x7F800000u | (m << 13);
    } else {
        u = sign | ((e + 112) << 23) | (m << 13);
    }
    float r;
    memcpy(&r, &u, 4);
    return r;
}

static uint16_t qk_probe_rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

#if QK_PROBE_X86
// One F16 → F32 with no dependency on any other register. clang compiles `_cvtsh_ss` (and every
// intrinsic spelling of it) to a `vpinsrw` that merges the loaded half into a register it treats as
// undefined, because only lane 0 is used — in the dot loops the accumulator, which chained every
// block's scale onto the previous block's FMA and ran the Q8_0/Q4_0 probes 2-4x slower than the
// kernels they stand for (gcc-built ggml has no such chain). `vmovd` writes the whole register and
// the conversion is an asm operand, so all its lanes are demanded and the zeros stay.
QK_PROBE_AVX2 static inline float qk_probe_half_avx2(uint16_t h) {
    __m128i bits = _mm_cvtsi32_si128((int)h);
    __m128 value;
    __asm__("vcvtph2ps %1, %0" : "=x"(value) : "x"(bits));
    return _mm_cvtss_f32(value);
}
#endif

// MARK: Streaming read

static uint64_t read_scalar(const void *data, size_t bytes) {
    const uint8_t *p = data;
    uint64_t a = 0, b = 0, c = 0, d = 0, w;
    size_t i = 0;
    for (; i + 32 <= bytes; i += 32) {
        memcpy(&w, p + i, 8); a += w;
        memcpy(&w, p + i + 8, 8); b += w;
        memcpy(&w, p + i + 16, 8); c += w;
        memcpy(&w, p + i + 24, 8); d += w;
    }
    for (; i < bytes; i++) a += p[i];
    return a + b + c + d;
}

#if QK_PROBE_X86
QK_PROBE_AVX2 static uint64_t read_avx2(const void *data, size_t bytes) {
    const uint8_t *p = data;
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    size_t i = 0;
    // Four independent 32-byte loads per iteration (128 bytes, two cache lines) keep enough
    // misses in flight for the hardware prefetchers; nothing is written.
    for (; i + 128 <= bytes; i += 128) {
        a = _mm256_add_epi64(a, _mm256_loadu_si256((const __m256i *)(p + i)));
        b = _mm256_add_epi64(b, _mm256_loadu_si256((const __m256i *)(p + i + 32)));
        c = _mm256_add_epi64(c, _mm256_loadu_si256((const __m256i *)(p + i + 64)));
        d = _mm256_add_epi64(d, _mm256_loadu_si256((const __m256i *)(p + i + 96)));
    }
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d));
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, s);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3] + read_scalar(p + i, bytes - i);
}
#endif

uint64_t qk_probe_read(const void *data, size_t bytes) {
#if QK_PROBE_X86
    if (qk_probe_use_avx2()) return read_avx2(data, bytes);
#endif
    return read_scalar(data, bytes);
}

// MARK: Q8_0 × Q8_0 (34-byte blocks: f16 scale, 32 int8)

static float dot_q8_0_scalar(const uint8_t *x, const uint8_t *y, size_t blocks) {
    float sum = 0;
    for (size_t b = 0; b < blocks; b++, x += 34, y += 34) {
        int32_t s = 0;
        for (int i = 0; i < 32; i++) s += (int32_t)(int8_t)x[2 + i] * (int32_t)(int8_t)y[2 + i];
        sum += qk_probe_half(qk_probe_rd16(x)) * qk_probe_half(qk_probe_rd16(y)) * (float)s;
    }
    return sum;
}

#if QK_PROBE_X86
// int8 × int8 → int32 over 32 lanes the way ggml's AVX2 kernels do it: |x| × sign(y, x) with
// maddubs (u8 × s8 → s16 pairs), then madd with ones (s16 pairs → s32).
QK_PROBE_AVX2 static inline __m256 mul_sum_i8(__m256i x, __m256i y) {
    __m256i ax = _mm256_sign_epi8(x, x), sy = _mm256_sign_epi8(y, x);
    __m256i pairs = _mm256_maddubs_epi16(ax, sy);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

QK_PROBE_AVX2 static inline float horizontal(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

QK_PROBE_AVX2 static float dot_q8_0_avx2(const uint8_t *x, const uint8_t *y, size_t blocks) {
    __m256 acc = _mm256_setzero_ps();
    for (size_t b = 0; b < blocks; b++, x += 34, y += 34) {
        __m256 d = _mm256_set1_ps(qk_probe_half_avx2(qk_probe_rd16(x)) * qk_probe_half_avx2(qk_probe_rd16(y)));
        __m256i qx = _mm256_loadu_si256((const __m256i *)(x + 2)), qy = _mm256_loadu_si256((const __m256i *)(y + 2));
        acc = _mm256_fmadd_ps(d, mul_sum_i8(qx, qy), acc);
    }
    return horizontal(acc);
}
#endif

float qk_probe_dot_q8_0(const void *x, const void *y, size_t blocks) {
#if QK_PROBE_X86
    if (qk_probe_use_avx2()) return dot_q8_0_avx2(x, y, blocks);
#endif
    return dot_q8_0_scalar(x, y, blocks);
}

// MARK: Q4_0 (18-byte blocks: f16 scale, 16 bytes of nibbles, value = nibble − 8) × Q8_0

static float dot_q4_0_scalar(const uint8_t *x, const uint8_t *y, size_t blocks) {
    float sum = 0;
    for (size_t b = 0; b < blocks; b++, x += 18, y += 34) {
        int32_t s = 0;
        for (int i = 0; i < 16; i++) {
            s += ((int32_t)(x[2 + i] & 15) - 8) * (int32_t)(int8_t)y[2 + i];
            s += ((int32_t)(x[2 + i] >> 4) - 8) * (int32_t)(int8_t)y[18 + i];
        }
        sum += qk_probe_half(qk_probe_rd16(x)) * qk_probe_half(qk_probe_rd16(y)) * (float)s;
    }
    return sum;
}

#if QK_PROBE_X86
QK_PROBE_AVX2 static float dot_q4_0_avx2(const uint8_t *x, const uint8_t *y, size_t blocks) {
    __m256 acc = _mm256_setzero_ps();
    const __m256i low = _mm256_set1_epi8(15), eight = _mm256_set1_epi8(8);
    for (size_t b = 0; b < blocks; b++, x += 18, y += 34) {
        __m256 d = _mm256_set1_ps(qk_probe_half_avx2(qk_probe_rd16(x)) * qk_probe_half_avx2(qk_probe_rd16(y)));
        __m128i packed = _mm_loadu_si128((const __m128i *)(x + 2));
        // Low nibbles are elements 0–15, high nibbles 16–31.
        __m256i both = _mm256_insertf128_si256(_mm256_castsi128_si256(packed), _mm_srli_epi16(packed, 4), 1);
        __m256i qx = _mm256_sub_epi8(_mm256_and_si256(both, low), eight);
        acc = _mm256_fmadd_ps(d, mul_sum_i8(qx, _mm256_loadu_si256((const __m256i *)(y + 2))), acc);
    }
    return horizontal(acc);
}
#endif

float qk_probe_dot_q4_0(const void *x, const void *y, size_t blocks) {
#if QK_PROBE_X86
    if (qk_probe_use_avx2()) return dot_q4_0_avx2(x, y, blocks);
#endif
    return dot_q4_0_scalar(x, y, blocks);
}

// MARK: Q4_K (144-byte super-blocks of 256: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins,
// 128 bytes of nibbles) × Q8_K (292 bytes: f32 d, 256 int8, 16 int16 sums of 16)

static void q4k_scale_min(int j, const uint8_t *q, uint8_t *scale, uint8_t *min) {
    if (j < 4) {
        *scale = q[j] & 63;
        *min = q[j + 4] & 63;
    } else {
        *scale = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static float dot_q4_k_scalar(const uint8_t *x, const uint8_t *y, size_t blocks) {
    float sum = 0;
    for (size_t b = 0; b < blocks; b++, x += 144, y += 292) {
        float dy;
        memcpy(&dy, y, 4);
        const uint8_t *qs = x + 16;
        const int8_t *q8 = (const int8_t *)(y + 4);
        int32_t dots = 0, mins = 0;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            q4k_scale_min(j, x + 4, &sc, &m);
            const uint8_t *bytes = qs + 32 * (j / 2);
            int32_t s = 0;
            for (int i = 0; i < 32; i++) s += (int32_t)((j & 1) ? bytes[i] >> 4 : bytes[i] & 15) * q8[32 * j + i];
            dots += s * sc;
            int16_t b0, b1;
            memcpy(&b0, y + 260 + 4 * j, 2);
            memcpy(&b1, y + 262 + 4 * j, 2);
            mins += (b0 + b1) * m;
        }
        sum += dy * (qk_probe_half(qk_probe_rd16(x)) * (float)dots - qk_probe_half(qk_probe_rd16(x + 2)) * (float)mins);
    }
    return sum;
}

#if QK_PROBE_X86
QK_PROBE_AVX2 static float dot_q4_k_avx2(const uint8_t *x, const uint8_t *y, size_t blocks) {
    __m256 acc = _mm256_setzero_ps();
    float minAcc = 0;
    const __m256i low = _mm256_set1_epi8(15);
    for (size_t b = 0; b < blocks; b++, x += 144, y += 292) {
        float dy;
        memcpy(&dy, y, 4);
        uint8_t sc[8], mn[8];
        for (int j = 0; j < 8; j++) q4k_scale_min(j, x + 4, &sc[j], &mn[j]);
        // Mins against the Q8_K block sums: 8 pairs of int16 sums times 8 mins.
        __m128i sums = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)(y + 260)), _mm_loadu_si128((const __m128i *)(y + 276)));
        __m128i m16 = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)mn));
        __m128i prod = _mm_madd_epi16(sums, m16);
        prod = _mm_add_epi32(prod, _mm_shuffle_epi32(prod, 0x4E));
        prod = _mm_add_epi32(prod, _mm_shuffle_epi32(prod, 0xB1));
        minAcc += dy * qk_probe_half_avx2(qk_probe_rd16(x + 2)) * (float)_mm_cvtsi128_si32(prod);
        __m256i total = _mm256_setzero_si256();
        const uint8_t *qs = x + 16;
        const uint8_t *q8 = y + 4;
        for (int j = 0; j < 4; j++) {
            __m256i packed = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
            __m256i lo = _mm256_and_si256(packed, low), hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low);
            // Nibbles are unsigned, so maddubs takes them as they are.
            __m256i plo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(q8 + 64 * j))), _mm256_set1_epi16(sc[2 * j]));
            __m256i phi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 64 * j + 32))), _mm256_set1_epi16(sc[2 * j + 1]));
            total = _mm256_add_epi32(total, _mm256_add_epi32(plo, phi));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dy * qk_probe_half_avx2(qk_probe_rd16(x))), _mm256_cvtepi32_ps(total), acc);
    }
    return horizontal(acc) - minAcc;
}
#endif

float qk_probe_dot_q4_k(const void *x, const void *y, size_t blocks) {
#if QK_PROBE_X86
    if (qk_probe_use_avx2()) return dot_q4_k_avx2(x, y, blocks);
#endif
    return dot_q4_k_scalar(x, y, blocks);
}

// MARK: F16 × F16 (llama.cpp's F16 matrix-vector path converts the activations to F16 too)

static float dot_f16_scalar(const uint8_t *x, const uint8_t *y, size_t count) {
    float sum = 0;
    for (size_t i = 0; i < count; i++) sum += qk_probe_half(qk_probe_rd16(x + 2 * i)) * qk_probe_half(qk_probe_rd16(y + 2 * i));
    return sum;
}

#if QK_PROBE_X86
QK_PROBE_AVX2 static float dot_f16_avx2(const uint8_t *x, const uint8_t *y, size_t count) {
    __m256 a = _mm256_setzero_ps(), b = a, c = a, d = a;
    size_t i = 0;
    for (; i + 32 <= count; i += 32) {
        const uint8_t *px = x + 2 * i, *py = y + 2 * i;
        a = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)px)), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)py)), a);
        b = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(px + 16))), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(py + 16))), b);
        c = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(px + 32))), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(py + 32))), c);
        d = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(px + 48))), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(py + 48))), d);
    }
    return horizontal(_mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, d))) + dot_f16_scalar(x + 2 * i, y + 2 * i, count - i);
}
#endif

float qk_probe_dot_f16(const void *x, const void *y, size_t count) {
#if QK_PROBE_X86
    if (qk_probe_use_avx2()) return dot_f16_avx2(x, y, count);
#endif
    return dot_f16_scalar(x, y, count);
}

// MARK: Barrier-synchronized rounds (how llama.cpp's threads run a graph)

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

typedef struct {
    atomic_int arrived;
    atomic_int generation;
    atomic_int stop;
    double budget, begin;
    int threads, rounds, done;
    size_t blocks;
    uint8_t *data;
    double *roundSeconds;
    float results[64];
} qk_sync_state;

static double qk_probe_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void qk_sync_barrier(qk_sync_state *s) {
    int generation = atomic_load_explicit(&s->generation, memory_order_acquire);
    if (atomic_fetch_add_explicit(&s->arrived, 1, memory_order_acq_rel) == s->threads - 1) {
        atomic_store_explicit(&s->arrived, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->generation, 1, memory_order_release);
        return;
    }
    // Spin, then yield, as GNU OpenMP's barrier (llama.cpp's build) spins and then sleeps; a
    // thread that was descheduled holds every other one here.
    long spins = 0;
    while (atomic_load_explicit(&s->generation, memory_order_acquire) == generation) {
        if (++spins < 20000) {
#if QK_PROBE_X86
            _mm_pause();
#endif
        } else {
            sched_yield();
        }
    }
}

typedef struct { qk_sync_state *state; int index; } qk_sync_arg;

static void *qk_sync_worker(void *raw) {
    qk_sync_arg *arg = raw;
    qk_sync_state *s = arg->state;
    const uint8_t *x = s->data + (size_t)arg->index * s->blocks * 68, *y = x + s->blocks * 34;
    float total = 0;
    double last = qk_probe_now();
    for (int r = 0; r < s->rounds; r++) {
        total += qk_probe_dot_q8_0(x, y, s->blocks);
        // Thread 0 decides before the barrier whether this is the last round.
        if (arg->index == 0 && (qk_probe_now() - s->begin > s->budget || r == s->rounds - 1)) {
            atomic_store_explicit(&s->stop, r, memory_order_relaxed);
        }
        qk_sync_barrier(s);
        if (arg->index == 0) {
            double now = qk_probe_now();
            s->roundSeconds[r] = now - last;
            s->done = r + 1;
            last = now;
        }
        // The last round is the one thread 0 named: a thread that reads the name early (before
        // finishing that round) still runs it.
        if (r >= atomic_load_explicit(&s->stop, memory_order_relaxed)) break;
    }
    s->results[arg->index] = total;
    return NULL;
}

double qk_probe_synchronized_rounds(int threads, int rounds, size_t blocks, double budget, double *fastest, int *completed) {
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    if (rounds < 1) rounds = 1;
    if (blocks < 1) blocks = 1;
    qk_sync_state s;
    atomic_init(&s.arrived, 0);
    atomic_init(&s.generation, 0);
    atomic_init(&s.stop, 1 << 30);
    s.budget = budget;
    s.done = 0;
    s.threads = threads;
    s.rounds = rounds;
    s.blocks = blocks;
    s.data = calloc((size_t)threads * blocks * 68, 1);
    s.roundSeconds = calloc((size_t)rounds, sizeof(double));
    if (!s.data || !s.roundSeconds) { free(s.data); free(s.roundSeconds); return -1; }
    for (size_t b = 0; b < (size_t)threads * blocks * 2; b++) {
        uint8_t *block = s.data + b * 34;
        block[0] = 0x00; block[1] = 0x14;  // F16 1/1024
        for (int i = 2; i < 34; i++) block[i] = (uint8_t)((b * 31 + (size_t)i * 7) & 0x3F);
    }
    pthread_t workers[64];
    qk_sync_arg args[64];
    int started = 0;
    double begin = qk_probe_now();
    s.begin = begin;
    for (int t = 1; t < threads; t++) {
        args[t] = (qk_sync_arg){ &s, t };
        if (pthread_create(&workers[t], NULL, qk_sync_worker, &args[t]) != 0) break;
        started++;
    }
    if (started != threads - 1) {
        // Could not start every thread: release the ones that wait by running with fewer.
        s.threads = started + 1;
    }
    args[0] = (qk_sync_arg){ &s, 0 };
    qk_sync_worker(&args[0]);
    for (int t = 1; t <= started; t++) pthread_join(workers[t], NULL);
    double elapsed = qk_probe_now() - begin;
    int done = s.done > 0 ? s.done : 1;
    double best = s.roundSeconds[0];
    for (int r = 1; r < done; r++) if (s.roundSeconds[r] < best) best = s.roundSeconds[r];
    if (fastest) *fastest = best;
    if (completed) *completed = done;
    free(s.data);
    free(s.roundSeconds);
    return elapsed;
}
