#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_repack_cache (fuzz/corpus/repack_cache): a cache file header
matching the target's fixed items, and a few near misses. Run from the repository root."""
import os
import struct

HEADER = "<8sIIIIQ1024sQQQQ"  # ts_rpc_header: magic, version, byte_order, isa, n_items, file_size,
                              # model_path, model_dev, model_ino, model_size, model_mtime_ns
ITEM = "<12Q"            # ts_rpc_item
FILE_SIZE = 4 * 4096
HEAD_END = struct.calcsize(HEADER) + 2 * struct.calcsize(ITEM)   # 1216: items from 4096 on
ITEMS = [
    (2, 256, 32, 1, 4096, 7, 11, 65536, 1000000000, 4096, 4608, 0),
    (12, 256, 16, 4, 16384, 7, 11, 65536, 1000000000, 12288, 4096, 0),
]


def header(magic=b"TSRPKCH1", version=2, order=0x01020304, isa=1, n=2, size=FILE_SIZE, items=ITEMS,
           path=b"/models/m.gguf", mtime=1000000000):
    return (struct.pack(HEADER, magic, version, order, isa, n, size, path, 7, 11, 65536, mtime)
            + b"".join(struct.pack(ITEM, *i) for i in items))


def main():
    out = "fuzz/corpus/repack_cache"
    os.makedirs(out, exist_ok=True)
    bad_offset = [ITEMS[0], ITEMS[1][:9] + (4096, 4096, 0)]            # overlaps the first item
    past_end = [ITEMS[0], ITEMS[1][:9] + (12288, 1 << 63, 0)]          # bytes run past the end
    seeds = {
        "valid": header(),
        "bad_magic": header(magic=b"GGUF\0\0\0\0"),
        "wrong_size": header(size=FILE_SIZE + 1),
        "overlap": header(items=bad_offset),
        "past_end": header(items=past_end),
        "short": header()[:70],
        "other_model": header(path=b"/models/other.gguf"),
        "newline_in_path": header(path=b"/mo\ndels/m.gguf"),  # once made the message two lines
        "model_touched": header(mtime=2000000000),
        "unterminated_path": header(path=b"x" * 1024),
        "too_many_items": header(n=1 << 30),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
