/* Repacked layouts of Q4_0 and Q8_0 (see repack.h): blocks of 32 values of 16 rows.
 *
 * Q4_0x16: d[r] = row r's scale. qs[t * 64 + r * 4 + k] (t = 0..3, k = 0..3) = byte 4t+k of row
 *   r's block: low nibble = value 4t+k, high nibble = value 4t+k+16 (as in the file). One 64-byte
 *   step t is 16 rows x 4 bytes: one vpdpbusd of its low nibbles with the activation bytes
 *   4t..4t+3 broadcast, one of its high nibbles with bytes 16+4t..16+4t+3.
 * Q8_0x16: d[r] = row r's scale. qs[t * 64 + r * 4 + k] (t = 0..7) = value 4t+k of row r plus 128
 *   (stored unsigned: vpdpbusd multiplies unsigned by signed bytes; the kernel removes 128 * sum of
 *   the activation block).
 *
 * Numerics shared by every kernel of these layouts (the scalar reference defines them): per
 * (row, token) the float accumulator starts at 0 and, for each block in order,
 *   isum = sum(u * a) - offset * sum(a)            (exact int32; u = nibble or q+128, offset 8 or 128)
 *   acc  = fmaf(d_w * d_a, (float)isum, acc)
 * where d_w, d_a are the fp16 scales converted exactly to float. */
#ifndef TS_QUANT_REPACK_LEGACY_H
#define TS_QUANT_REPACK_LEGACY_H

#include <assert.h>
#include <stdint.h>

#include "quant/blocks.h"
#include "quant/repack.h"

typedef struct { ts_f16 d[TS_REPACK_ROWS]; uint8_t qs[TS_REPACK_ROWS * QK4_0 / 2]; } block_q4_0x16;
typedef struct { ts_f16 d[TS_REPACK_ROWS]; uint8_t qs[TS_REPACK_ROWS * QK8_0]; } block_q8_0x16;

static_assert(sizeof(block_q4_0x16) == 16 * sizeof(block_q4_0), "block_q4_0x16");
static_assert(sizeof(block_q8_0x16) == 16 * sizeof(block_q8_0), "block_q8_0x16");

#endif
