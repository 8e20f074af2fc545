/* Repacked layouts of Q4_0, Q5_0 and Q8_0 (see repack.h): blocks of 32 values of 16 rows.
 *
 * Q4_0x16: d[r] = row r's scale. qs[t * 64 + r * 4 + k] (t = 0..3, k = 0..3) = byte 4t+k of row
 *   r's block: low nibble = value 4t+k, high nibble = value 4t+k+16 (as in the file). One 64-byte
 *   step t is 16 rows x 4 bytes: one vpdpbusd of its low nibbles with the activation bytes
 *   4t..4t+3 broadcast, one of its high nibbles with bytes 16+4t..16+4t+3.
 * Q5_0x16: d[r] and qs as Q4_0x16 (the low 4 bits of each value); qh[r * 4 + k] bit s (s = 0..7) =
 *   bit 4 of value 4s+k of row r. Step s's 64 bytes of high bits are qh with bit s of every byte
 *   moved to bit 4 (one 16-bit shift and a mask), so a value is nibble | that bit, 0..31, and
 *   vpdpbusd takes it as it takes a Q4_0 nibble (offset 16). The same 22 bytes per row and block
 *   as the file.
 * Q8_0x16: d[r] = row r's scale. qs[t * 64 + r * 4 + k] (t = 0..7) = value 4t+k of row r plus 128
 *   (stored unsigned: vpdpbusd multiplies unsigned by signed bytes; the kernel removes 128 * sum of
 *   the activation block).
 *
 * Numerics shared by every kernel of these layouts (the scalar reference defines them): per
 * (row, token) the float accumulator starts at 0 and, for each block in order,
 *   isum = sum(u * a) - offset * sum(a)   (exact int32; u = nibble, 5-bit value or q+128; offset 8, 16
 *                                          or 128)
 *   acc  = fmaf(d_w * d_a, (float)isum, acc)
 * where d_w, d_a are the fp16 scales converted exactly to float. */
#ifndef TS_QUANT_REPACK_LEGACY_H
#define TS_QUANT_REPACK_LEGACY_H

#include <assert.h>
#include <stdint.h>

#include "quant/blocks.h"
#include "quant/repack.h"

typedef struct { ts_f16 d[TS_REPACK_ROWS]; uint8_t qs[TS_REPACK_ROWS * QK4_0 / 2]; } block_q4_0x16;
typedef struct { ts_f16 d[TS_REPACK_ROWS]; uint8_t qh[TS_REPACK_ROWS * 4]; uint8_t qs[TS_REPACK_ROWS * QK5_0 / 2]; } block_q5_0x16;
typedef struct { ts_f16 d[TS_REPACK_ROWS]; uint8_t qs[TS_REPACK_ROWS * QK8_0]; } block_q8_0x16;

static_assert(sizeof(block_q4_0x16) == 16 * sizeof(block_q4_0), "block_q4_0x16");
static_assert(sizeof(block_q5_0x16) == 16 * sizeof(block_q5_0), "block_q5_0x16");
static_assert(sizeof(block_q8_0x16) == 16 * sizeof(block_q8_0), "block_q8_0x16");

/* The legacy layouts by kind, for the kernels and drivers they share. */
enum legacy_kind { LEGACY_Q4_0, LEGACY_Q5_0, LEGACY_Q8_0 };
static inline size_t legacy_block_bytes(enum legacy_kind kind) {
    return kind == LEGACY_Q4_0 ? sizeof(block_q4_0x16) : kind == LEGACY_Q5_0 ? sizeof(block_q5_0x16) : sizeof(block_q8_0x16);
}
/* What the stored unsigned weight exceeds the signed value by. */
static inline int legacy_offset(enum legacy_kind kind) { return kind == LEGACY_Q4_0 ? 8 : kind == LEGACY_Q5_0 ? 16 : 128; }

#endif
