// Writes the tokenizer agreement corpus (one JSON string per line) to stdout: the hand-written
// cases in cases.jsonl, then COUNT (default 6000) strings drawn deterministically (fixed-seed PRNG,
// so every run and every machine gets the same corpus) from pools that stress pre-tokenizers:
// source code, many scripts, emoji/ZWJ, combining marks, digit, whitespace and punctuation runs,
// very long words, special-token texts inside text.
// usage: node make_corpus.mjs [COUNT] > corpus.jsonl
import { readFileSync } from "node:fs";

const count = Number(process.argv[2] ?? 6000);
let seed = 0x9e3779b9;
function rand() { // xorshift32: small, deterministic, good enough to pick fragments
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed / 4294967296;
}
const pick = (a) => a[Math.floor(rand() * a.length)];
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));

const code = [
  "int main(int argc, char **argv) {\n\treturn argc > 1 ? atoi(argv[1]) : 0;\n}\n",
  "def fib(n):\n    return n if n < 2 else fib(n-1) + fib(n-2)\n",
  "const x = arr.map((v, i) => v * i).filter(Boolean); // done\r\n",
  "fn main() { let v: Vec<u32> = (0..10).collect(); println!(\"{:?}\", v); }",
  "SELECT id, name FROM users WHERE age >= 18 AND name LIKE '%son' ORDER BY id DESC;",
  "<div class=\"x\"><a href='https://example.com/?q=1&r=2'>link</a></div>",
  "for i in $(seq 1 10); do echo \"$i\" >> /tmp/out.txt; done",
  "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hi\")\n}\n",
  "#include <stdio.h>\n#define MAX(a,b) ((a)>(b)?(a):(b))\n",
  "    if (x != nullptr && x->next) { x = x->next; } else { break; }",
  "public static void main(String[] args) throws IOException {}",
  "{\"key\": [1, 2.5, -3e10, true, null], \"nested\": {\"a\": \"b\"}}",
  "matrix = [[1,2,3],[4,5,6]]  # 2x3\n\n\n",
  "x := 0x1F; y := 0b1010; z := 1_000_000",
  "$ git commit -m 'fix: handle CRLF' && git push origin main",
];
const words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "don't", "I'm", "we'll", "they've",
  "it's", "HE'S", "You'RE", "naïve", "café", "Straße", "über", "résumé", "Москва", "привет", "мир", "Ελλάδα",
  "λόγος", "hello", "world", "DeepSeek", "tokenizer", "GPT", "LLaMA", "ÆØÅ", "İstanbul", "ǅemal"];
const scripts = [
  "你好，世界！今天天气很好。", "深度求索人工智能基础技术研究有限公司", "日本語のテキストとカタカナ、ひらがな。",
  "東京タワーは333メートルです。", "한국어 텍스트입니다. 안녕하세요!", "مرحبا بالعالم، هذا نص عربي.",
  "السلام عليكم ورحمة الله", "नमस्ते दुनिया, यह हिंदी पाठ है।", "क्षत्रिय ज्ञान श्री", "สวัสดีชาวโลก",
  "שלום עולם", "Γειά σου Κόσμε", "Привет, как дела?", "ሰላም ልዑል", "Xin chào thế giới", "ᠮᠣᠩᠭᠣᠯ",
  "𠀀𠀁𪚥𫝀", "㐀㐁䶵", "ﾊﾝｶｸｶﾀｶﾅ", "ＡＢＣ１２３！？", "〈《「『【〔", "ⅠⅡⅢⅣ", "①②③", "½¾⅓",
];
const emoji = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇩🇪🇯🇵", "❤️", "🧑🏿‍💻", "👩‍❤️‍💋‍👨", "☕", "✨🎉",
  "#️⃣", "🫠", "🤌🏻", "😶‍🌫️", "\u2764\ufe0f\u200d\ud83d\udd25"];
const combining = ["e\u0301", "a\u0300\u0316", "n\u0303", "Z\u0351\u0352\u0353\u0354", "\u0301", "o\u0308\u0304",
  "\u1100\u1161\u11a8", "A\u030a", "\u0915\u094d\u0937", "\u05d1\u05bc", "i\u0307", "\u0627\u064b"];
const spaces = [" ", "  ", "\t", "\n", "\r\n", "\r", "\n\n", " \t ", "\u00a0", "\u3000", "\u2009", "\u0085",
  "\u2028", "\u200b", "\ufeff", "\u000b", "\u000c", "\t\t\n", " \n ", "\r\r\n\n"];
const punct = ["a~~b", "...!!", "?!?!", "---", "===", "***", "!!!", "'''", "\"\"\"", "<<>>", "::", "->", "=>",
  "…", "——", "«»", "¿¡", "、。", "!!!???", "@#$%^&*()", "[]{}", "\\\\", "//", "/*", "*/", "~", "`", "''s", "'S"];
const specials = ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>",
  "<｜tool▁calls▁begin｜>", "<｜tool▁sep｜>", "<think>", "</think>", "<｜User", "｜>", "<｜fim▁hole｜>",
  "<|endoftext|>", "<|im_start|>"];

function digits() {
  const n = pick([1, 2, 3, 4, 5, 7, 10, 16, 33, 100]);
  let s = "";
  for (let i = 0; i < n; i++) s += String(int(0, 9));
  return rand() < 0.2 ? s.replace(/[0-9]/g, (d) => pick([d, "٣", "३", "３", "߁"])) : s;
}
function longWord() {
  const n = int(50, 1200);
  const alphabet = pick(["abcdefghijklmnopqrstuvwxyz", "aeiou", "x", "αβγδε", "абвгд", "你我他", "ab1"]);
  let s = "";
  for (let i = 0; i < n; i++) s += alphabet[int(0, alphabet.length - 1)];
  return s;
}
function randomCodePoint() {
  const ranges = [[0x20, 0x7e], [0xa0, 0x24f], [0x300, 0x36f], [0x370, 0x52f], [0x590, 0x6ff], [0x900, 0x97f],
    [0xe00, 0xe7f], [0x1100, 0x11ff], [0x2000, 0x206f], [0x2190, 0x23ff], [0x3000, 0x30ff], [0x4e00, 0x9fff],
    [0xac00, 0xd7a3], [0xff00, 0xffef], [0x1f300, 0x1faff], [0x20000, 0x2a6df], [0x0, 0x1f]];
  const [lo, hi] = pick(ranges);
  return String.fromCodePoint(int(lo, hi));
}
const generators = [
  () => pick(code), () => pick(words), () => pick(scripts), () => pick(emoji), () => pick(combining),
  () => pick(spaces), () => pick(punct), digits, () => pick(specials), randomCodePoint, () => " " + pick(words),
  () => pick(words).toUpperCase(),
];

const out = [];
for (const line of readFileSync(new URL("cases.jsonl", import.meta.url), "utf8").split("\n"))
  if (line.trim() !== "") out.push(JSON.stringify(JSON.parse(line)));
for (let i = 0; i < count; i++) {
  let s = "";
  const kind = rand();
  if (kind < 0.03) s = "";
  else if (kind < 0.06) s = longWord();
  else {
    const parts = int(1, 12);
    for (let k = 0; k < parts; k++) s += pick(generators)();
  }
  out.push(JSON.stringify(s));
}
process.stdout.write(out.join("\n") + "\n");
