/* The repacked-weights cache file (ts_model_repack_cached): its format and the check of a header
 * read from disk against what the model expects. Kept apart so that the fuzzer and the tests can
 * feed the check any bytes.
 *
 * Layout (host byte order; the byte-order tag refuses a file from another kind of machine):
 *   ts_rpc_header, then n_items ts_rpc_item records, then each item's repacked bytes at its
 *   cache_offset (page aligned, ascending, after the records), file_size bytes in all. */
#ifndef TS_MODEL_REPACK_CACHE_H
#define TS_MODEL_REPACK_CACHE_H

#include <stddef.h>
#include <stdint.h>

#define TS_RPC_MAGIC "TSRPKCH1"
#define TS_RPC_VERSION 1u
#define TS_RPC_BYTE_ORDER 0x01020304u
#define TS_RPC_ALIGN 4096u

typedef struct ts_rpc_header {
    char magic[8];
    uint32_t version, byte_order;
    uint32_t isa; /* enum ts_isa whose layouts the file holds */
    uint32_t n_items;
    uint64_t file_size;
} ts_rpc_header;

/* One matrix (or expert stack): what identifies its source, and where its repacked bytes are. */
typedef struct ts_rpc_item {
    uint64_t type, n_in, n_out, n_experts;
    uint64_t src_offset;                                /* of its file-layout bytes in its part file */
    uint64_t src_dev, src_ino, src_size, src_mtime_ns; /* that part file, from fstat */
    uint64_t cache_offset, bytes;
    uint64_t reserved; /* 0 */
} ts_rpc_item;

/* Checks a cache file's first len bytes (header and item records) against the n_want items the
 * model expects (every field but cache_offset compared) for file_size bytes of file and the given
 * isa. Returns 0 when they match and every item's bytes lie in the file, page aligned, ascending
 * and after the records; otherwise -1 with a sentence in why saying what differs. Safe on any
 * bytes. */
int ts_rpc_check(const void *buf, size_t len, uint64_t file_size, uint32_t isa, const ts_rpc_item *want, uint32_t n_want,
                 char *why, size_t why_len);

#endif
