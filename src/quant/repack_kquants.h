/* Repacked layouts of Q4_K and Q6_K (see repack.h): blocks of 256 values of 16 rows r = 0..15.
 * Everything that varies per row sits in the 16 lanes of a vector (row r in lane r), so one
 * vpdpbusd with a broadcast 4-byte activation group does 4 multiply-adds for all 16 rows.
 *
 * Q4_Kx16:
 *   d[r], dmin[r]: row r's super-block scales (the file's fp16 values).
 *   scales[j * 16 + r]: the 6-bit scale of sub-block j (32 values) of row r, unpacked to a byte
 *     (one vpmovzxbd gives the 16 lanes of sub-block j).
 *   mins[i * 32 + r * 2 + e]: the 6-bit min of sub-block 2i + e of row r, unpacked to a byte; the
 *     pairs are adjacent so that one vpmovzxbw gives 16 lanes of (min 2i, min 2i+1) int16 pairs
 *     for a vpdpwssd with broadcast pairs of activation sums.
 *   qs[s * 64 + r * 4 + k] (step s = 0..31, chunk j = s / 8, t = s % 8, k = 0..3) = byte
 *     32j + 4t + k of row r's qs: low nibble = value 64j + 4t + k (sub-block 2j), high nibble =
 *     value 64j + 32 + 4t + k (sub-block 2j + 1), as in the file.
 * Q6_Kx16 (re-encoded so that each 16-value sub-block is one self-contained, contiguous step of
 *   three 64-byte vectors: the kernel streams the block front to back):
 *   d[r]: row r's scale; scales[j * 16 + r]: the signed scale of sub-block j (16 values) of row r.
 *   For sub-block j of row r, write its 6-bit quants (0..63, value = quant - 32) as
 *   q[16j + 4i + k] (i, k = 0..3). Then, with base = j * 192 + r * 4 + k,
 *     qs[base]       = (q[16j + k] & 15)     | (q[16j + 8 + k] & 15) << 4    (groups 0 and 2)
 *     qs[base + 64]  = (q[16j + 4 + k] & 15) | (q[16j + 12 + k] & 15) << 4   (groups 1 and 3)
 *     qs[base + 128] = sum over i = 0..3 of (q[16j + 4i + k] >> 4) << (2i)  (top 2 bits of all four)
 *   i.e. the file's in-byte bit positions (ql low/high nibble, qh bits 0-1/2-3/4-5/6-7), 16 rows
 *   interleaved 4 bytes at a time.
 */
#ifndef TS_QUANT_REPACK_KQUANTS_H
#define TS_QUANT_REPACK_KQUANTS_H

#include <assert.h>
#include <stdint.h>

#include "quant/blocks.h"
#include "quant/repack.h"

typedef struct {
    ts_f16 d[TS_REPACK_ROWS], dmin[TS_REPACK_ROWS];
    uint8_t scales[8 * TS_REPACK_ROWS], mins[8 * TS_REPACK_ROWS];
    uint8_t qs[TS_REPACK_ROWS * QK_K / 2];
} block_q4_Kx16;

typedef struct {
    ts_f16 d[TS_REPACK_ROWS];
    int8_t scales[16 * TS_REPACK_ROWS];
    uint8_t qs[TS_REPACK_ROWS * QK_K * 3 / 4]; /* 16 sub-blocks of 192 bytes */
} block_q6_Kx16;

static_assert(sizeof(block_q4_Kx16) == 16 * (sizeof(block_q4_K) + 4), "block_q4_Kx16");
static_assert(sizeof(block_q6_Kx16) == 16 * sizeof(block_q6_K), "block_q6_Kx16");

#endif
