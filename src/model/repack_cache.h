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
#define TS_RPC_VERSION 2u
#define TS_RPC_BYTE_ORDER 0x01020304u
#define TS_RPC_ALIGN 4096u
#define TS_RPC_PATH_MAX 1024

typedef struct ts_rpc_header {
    char magic[8];
    uint32_t version, byte_order;
    uint32_t isa; /* enum ts_isa whose layouts the file holds */
    uint32_t n_items;
    uint64_t file_size;
    /* The model file it was made from (its real path, NUL-terminated) and that file's identity
     * then: what `tiefsee cache` reports and prunes by. */
    char model_path[TS_RPC_PATH_MAX];
    uint64_t model_dev, model_ino, model_size, model_mtime_ns;
} ts_rpc_header;

/* One matrix (or expert stack): what identifies its source, and where its repacked bytes are. */
typedef struct ts_rpc_item {
    uint64_t type, n_in, n_out, n_experts;
    uint64_t src_offset;                                /* of its file-layout bytes in its part file */
    uint64_t src_dev, src_ino, src_size, src_mtime_ns; /* that part file, from fstat */
    uint64_t cache_offset, bytes;
    uint64_t reserved; /* 0 */
} ts_rpc_item;

/* Parses a cache file's first len bytes (header and item records) for a file of file_size bytes:
 * returns 0 with *h filled when the header is one of this version and byte order, the model path is
 * terminated, and every item's bytes lie in the file (page aligned, ascending, after the records);
 * otherwise -1 with a sentence in why. Items are checked only when len holds them all. Safe on any
 * bytes. */
int ts_rpc_parse(const void *buf, size_t len, uint64_t file_size, ts_rpc_header *h, char *why, size_t why_len);

/* ts_rpc_parse, then compares the header with the model that expects it (model_path, its identity
 * in want_header's model_* fields, isa) and every item with want[0..n_want) (every field but
 * cache_offset). Returns 0 when all match, -1 with a sentence in why saying what differs. */
int ts_rpc_check(const void *buf, size_t len, uint64_t file_size, const ts_rpc_header *want_header,
                 const ts_rpc_item *want, uint32_t n_want, char *why, size_t why_len);

/* How many bytes a cache file must leave free on a file system of total_bytes: 5 % of it, but at
 * least 1 GiB (never fill a small disk) and at most 4 GiB (5 % of a multi-terabyte disk, or of a
 * busy build machine's, would refuse a cache that fits with room to spare). */
uint64_t ts_rpc_keep_free(uint64_t total_bytes);

/* Whether a cache file of need bytes fits on a file system with avail of total_bytes free,
 * leaving ts_rpc_keep_free(total_bytes). */
int ts_rpc_room_ok(uint64_t need, uint64_t avail, uint64_t total_bytes);

#endif
