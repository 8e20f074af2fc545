#!/usr/bin/env python3
"""Writes a Hugging Face tokenizer.json equivalent to a GGUF's byte-level BPE vocabulary, for the
agreement test: llama.cpp's vocab-only test files (models/ggml-vocab-*.gguf) cover the families
(DeepSeek-LLM, DeepSeek-Coder, Qwen2, Llama-3, GPT-2) whose real tokenizer.json is not available
offline. Tokens of type CONTROL become special added tokens, USER_DEFINED non-special added tokens,
UNUSED ones are left out; the pre_tokenizer is the one the family's HF tokenizer.json carries.

usage: gguf_vocab_to_tokenizer_json.py VOCAB.gguf OUT.json"""
import json
import struct
import sys

SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def read_kv(path):
    data = open(path, "rb").read()
    pos = 0

    def take(fmt):
        nonlocal pos
        (value,) = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return value

    def string():
        nonlocal pos
        n = take("<Q")
        pos += n
        return data[pos - n:pos].decode("utf-8", errors="surrogateescape")

    def value(vtype):
        if vtype == 8:
            return string()
        if vtype == 9:
            item_type, n = take("<I"), take("<Q")
            return [value(item_type) for _ in range(n)]
        return take(SCALARS[vtype])

    if data[:4] != b"GGUF":
        sys.exit(f"{path}: not a GGUF file")
    pos = 4
    take("<I")  # version
    take("<Q")  # tensor count
    kv = {}
    for _ in range(take("<Q")):
        key = string()
        kv[key] = value(take("<I"))
    return kv


def split(regex):
    return {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False}


BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")
CJK = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"
# DeepSeek-LLM's letter class, as its tokenizer.json writes it (llama.cpp copies it into llama-vocab.cpp).
LLM_LETTERS = (
    "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af\u0370-\u0373"
    "\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5\u03f7-\u0481\u048a-\u052f"
    "\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77"
    "\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d"
    "\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4"
    "\u1ff6-\u1ffc\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139"
    "\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3\ua640-\ua66d"
    "\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a"
    "\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3\U000104d8-\U000104fb\U00010c80-\U00010cb2"
    "\U00010cc0-\U00010cf2\U000118a0-\U000118df\U0001e900-\U0001e943]+")
PRE_TOKENIZERS = {
    "llama-bpe": {"type": "Sequence", "pretokenizers": [split(LLAMA3), BYTE_LEVEL]},
    "qwen2": {"type": "Sequence", "pretokenizers": [split(LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")), BYTE_LEVEL]},
    "deepseek-coder": {"type": "Sequence", "pretokenizers": [
        split("[\r\n]"), split(r"\s?\p{L}+"), split(r"\s?\p{P}+"), split(CJK),
        {"type": "Digits", "individual_digits": True}, BYTE_LEVEL]},
    "deepseek-llm": {"type": "Sequence", "pretokenizers": [
        split("[\r\n]"), split(LLM_LETTERS), split("\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+"),
        split(r"\s+$"), split(CJK), {"type": "Digits", "individual_digits": False}, BYTE_LEVEL]},
    "gpt-2": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
}


def main():
    kv = read_kv(sys.argv[1])
    pre = kv.get("tokenizer.ggml.pre", "default")
    if pre not in PRE_TOKENIZERS:
        sys.exit(f"{sys.argv[1]}: pre-tokenizer {pre!r} has no tokenizer.json form here")
    tokens = kv["tokenizer.ggml.tokens"]
    types = kv.get("tokenizer.ggml.token_type", [1] * len(tokens))
    vocab, added = {}, []
    for i, (text, kind) in enumerate(zip(tokens, types)):
        if kind in (3, 4):
            added.append({"id": i, "content": text, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": kind == 4, "special": kind == 3})
        elif kind != 5 and text not in vocab:
            vocab[text] = i
    doc = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "NFC"} if pre == "qwen2" else None,
        "pre_tokenizer": PRE_TOKENIZERS[pre],
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": pre == "llama-bpe", "vocab": vocab, "merges": kv["tokenizer.ggml.merges"]},
    }
    with open(sys.argv[2], "w", encoding="utf-8", errors="surrogateescape") as out:
        json.dump(doc, out, ensure_ascii=False)


main()
