/* libFuzzer target for the header of a repacked-weights cache file (ts_rpc_check): a cache file
 * is read back from disk, where anything may have happened to it, so arbitrary bytes must be
 * refused with one sentence or accepted only when every item lies inside the file (ts_rpc_parse,
 * and ts_rpc_check against a fixed model: path, identity and items); the seed corpus (fuzz/corpus/repack_cache, written by make_repack_cache_corpus.py)
 * holds a header that matches them, for the fuzzer to mutate. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "model/repack_cache.h"

#define FILE_SIZE (4u * TS_RPC_ALIGN)

static const ts_rpc_item want[2] = {
    {.type = 2, .n_in = 256, .n_out = 32, .n_experts = 1, .src_offset = 4096, .src_dev = 7, .src_ino = 11,
     .src_size = 65536, .src_mtime_ns = 1000000000, .cache_offset = 4096, .bytes = 4608},
    {.type = 12, .n_in = 256, .n_out = 16, .n_experts = 4, .src_offset = 16384, .src_dev = 7, .src_ino = 11,
     .src_size = 65536, .src_mtime_ns = 1000000000, .cache_offset = 12288, .bytes = 4096},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char why[256] = "";
    ts_rpc_header h;
    /* The parse alone (what `tiefsee cache` does with any file in the folder). */
    if (ts_rpc_parse(data, size, FILE_SIZE, &h, why, sizeof why) != 0) {
        fuzz_check_message(why);
    } else if (!memchr(h.model_path, '\0', sizeof h.model_path)) {
        abort();
    }
    ts_rpc_header want_header = {.isa = 1, .model_dev = 7, .model_ino = 11, .model_size = 65536,
                                 .model_mtime_ns = 1000000000};
    memcpy(want_header.model_path, "/models/m.gguf", sizeof "/models/m.gguf");
    why[0] = '\0';
    if (ts_rpc_check(data, size, FILE_SIZE, &want_header, want, 2, why, sizeof why) != 0) {
        fuzz_check_message(why);
        return 0;
    }
    /* Accepted: every item must lie inside the file, after the records, ascending. */
    uint64_t prev_end = sizeof(ts_rpc_header) + 2 * sizeof(ts_rpc_item);
    for (int i = 0; i < 2; i++) {
        ts_rpc_item it;
        memcpy(&it, data + sizeof(ts_rpc_header) + (size_t)i * sizeof it, sizeof it);
        if (it.cache_offset < prev_end || it.bytes > FILE_SIZE || it.cache_offset > FILE_SIZE - it.bytes ||
            it.bytes != want[i].bytes)
            abort();
        prev_end = it.cache_offset + it.bytes;
    }
    return 0;
}
