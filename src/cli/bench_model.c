/* `tiefsee bench -m MODEL [-p LIST] [-n LIST] [-d LIST] [-t LIST] [-r N] [-o md|json]`: prompt
 * processing and generation speed, like llama.cpp's llama-bench (same test names, same JSON field
 * names where the two overlap, so tools reading llama-bench output read ours), plus what
 * llama-bench does not say: how close generation is to the memory-bandwidth roofline.
 *
 * Definitions (docs/bench.md has the long form):
 *   ppP  decode P random tokens in n_batch chunks; tokens/s = P / time.
 *   tgN  N single-token decodes, each token the greedy argmax of the previous logits.
 *   @ dD the test starts with D tokens already in the cache; filling them is not timed.
 *   Each test is run once untimed (warm-up), then -r times; t/s is mean ± sample sd over the runs.
 *   bytes per token (tg)  = active weight bytes (ts_model_active_bytes_per_token) + KV cache bytes
 *                           read, averaged over the test: kv_bytes_per_position * (D + (N+1)/2).
 *   roofline fraction     = tg tokens/s * bytes per token / read bandwidth (same thread count),
 *                           probed right before and right after the test (their mean; --bandwidth).
 *   attention flops (tg)  = ts_model_attention_flops_per_token at the test's average depth
 *                           D + (N+1)/2 (exactly linear in depth, so = per-position flops * that);
 *                           attention GFLOP/s = that * tokens/s; peak fraction = that / the F32
 *                           FMA peak probe (util/flops_probe.h, same thread count).
 *   time to first token   = model load + context creation + decode of an 8-token prompt up to its
 *                           logits, the first time in the process. */
#include "cli/bench_model.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "tiefsee.h"
#include "util/flops_probe.h"
#include "util/cpu_stat.h"
#include "util/membw.h"

#define BENCH_MAX_VALUES 64
#define BENCH_TTFT_PROMPT 8
#define BENCH_MAX_PARALLEL 64 /* -np: sequences in one tg test */
#define BENCH_MAX_WALKS 3     /* --walk: auto, pairs, one-group */

typedef struct int_list {
    int v[BENCH_MAX_VALUES];
    int n;
} int_list;

typedef struct bench_opts {
    const char *models[BENCH_MAX_VALUES];
    int n_models;
    int_list prompt, gen, depth, threads, parallel;
    enum ts_cache_type cache[4];
    int n_cache;
    int n_batch, reps, probe_mb;
    bool json, probe_force, no_warmup, progress;
    bool profile; /* --profile: where each test's decoding time goes, step by step */
    cli_weight_opts weights;
    /* --bandwidth cached: one bandwidth figure per thread count (cached probe, or probed at the
     * start); default: probed right before and right after each generation test. */
    bool bw_cached;
    const char *isa_name; /* --isa: kernels of this instruction set (NULL: the best the CPU has) */
    enum ts_isa isa;      /* that one, or ts_isa_best() */
    /* --walk: the one-token walks of the repacked K-quant products to compare (ts_model_set_walk);
     * with several, each test's timed runs take them in turn inside this process (A B B A ...),
     * one row each. n_walks 0: the model's default, no walk column. */
    const char *walks[BENCH_MAX_WALKS];
    int n_walks;
} bench_opts;

/* ---- option parsing --------------------------------------------------------------------------- */

/* Parses "512", "1,2,4", "1-4" or "64-512+64" (llama-bench's range forms) into list (appending). */
static bool parse_int_list(const char *s, long min, long max, int_list *list) {
    char item[64];
    while (*s) {
        size_t n = strcspn(s, ",");
        if (n == 0 || n >= sizeof item) return false;
        memcpy(item, s, n);
        item[n] = '\0';
        s += n + (s[n] == ',');
        long first, last, step = 1;
        char *dash = strchr(item + 1, '-'); /* item + 1: a leading '-' would be a sign */
        if (dash) {
            *dash = '\0';
            char *plus = strchr(dash + 1, '+');
            if (plus) {
                *plus = '\0';
                if (!parse_long(plus + 1, 1, max > 1 ? max : 1, &step)) return false;
            }
            if (!parse_long(item, min, max, &first) || !parse_long(dash + 1, min, max, &last) || last < first)
                return false;
        } else {
            if (!parse_long(item, min, max, &first)) return false;
            last = first;
        }
        for (long v = first; v <= last; v += step) {
            if (list->n >= BENCH_MAX_VALUES) return false;
            list->v[list->n++] = (int)v;
        }
    }
    return list->n > 0;
}

static bool parse_walk_list(const char *s, bench_opts *o) {
    static const char *const names[] = {"auto", "pairs", "one-group"};
    while (*s) {
        const size_t n = strcspn(s, ",");
        const char *found = NULL;
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
            if (strlen(names[k]) == n && strncmp(s, names[k], n) == 0) found = names[k];
        if (!found || o->n_walks >= BENCH_MAX_WALKS) return false;
        for (int k = 0; k < o->n_walks; k++)
            if (o->walks[k] == found) return false; /* twice the same walk: two rows of one thing */
        o->walks[o->n_walks++] = found;
        if (s[n] == ',' && s[n + 1] == '\0') return false; /* "pairs,": a walk left out */
        s += n + (s[n] == ',');
    }
    return o->n_walks > 0;
}

static bool parse_cache_list(const char *s, bench_opts *o) {
    char item[16];
    while (*s) {
        size_t n = strcspn(s, ",");
        if (n == 0 || n >= sizeof item || o->n_cache >= (int)(sizeof o->cache / sizeof o->cache[0])) return false;
        memcpy(item, s, n);
        item[n] = '\0';
        s += n + (s[n] == ',');
        if (ts_cache_type_from_name(item, &o->cache[o->n_cache]) != 0) return false;
        o->n_cache++;
    }
    return o->n_cache > 0;
}

void bench_model_print_options(FILE *out) {
    static const char *const lines[][2] = {
        {"-m, --model FILE", "GGUF model; repeat for several models"},
        {"-p, --n-prompt LIST", "prompt lengths for pp tests (default 512; 0 = none)"},
        {"-n, --n-gen LIST", "generated tokens for tg tests (default 128; 0 = none)"},
        {"-d, --n-depth LIST", "tokens already in the cache before each test (default 0)"},
        {"-t, --threads LIST", "thread counts (default: number of cores)"},
        {"-np, --parallel LIST", "sequences generating together in tg tests, each with its own cache of depth -d (default 1); t/s counts the tokens of all of them, as a server serving that many requests at once"},
        {"-b, --batch-size N", "tokens per decode call in pp tests (default 512)"},
        {"-r, --repetitions N", "timed runs per test (default 5)"},
        {"-ctk, --cache-type LIST", "KV cache types: f16, f32, bf16, q8_0 (default f16)"},
        {"-o, --output FMT", "md (table, default) or json (llama-bench's field names)"},
        {"--probe", "re-measure memory bandwidth and FMA peak instead of using the cached figures"},
        {"--probe-mb N", "bandwidth probe buffer in MiB (default 1024)"},
        {"--bandwidth MODE", "around (default): probe the read bandwidth right before and right after each generation test and take the roofline against their mean; cached: one figure per thread count, from the cache of earlier runs (faster)"},
        {"--no-warmup", "skip the untimed warm-up run of each test"},
        {"--repack", "repack the weights at load even when they are large (see 'tiefsee run --help')"},
        {"--no-repack", "keep the weights in the mapped file layout (default: repacked as 'tiefsee run' does; load time includes it)"},
        {"--repack-cache", "map the repacked weights from a cache file, writing it first if there is none (see 'tiefsee run --help'); load time includes it"},
        {"--isa NAME", "use the kernels of avx2, avxvnni, avx512, neon or scalar instead of the best this CPU has, e.g. to measure an AVX2-only machine's code paths on an AVX-512 one (the FMA peak probe follows)"},
        {"--walk LIST", "one-token walk of the repacked K-quant products: auto (default), pairs, one-group; several (e.g. pairs,one-group) take turns run by run inside this process, one row each, so that they see the same memory in the same minutes"},
        {"--profile", "time each step of the forward pass during the timed runs and print where a token's time goes, with the rate each step read its weights at"},
        {"--progress", "report each step on stderr"},
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) fprintf(out, "  %-28s %s\n", lines[i][0], lines[i][1]);
    fprintf(out, "  LIST: comma-separated values or ranges FIRST-LAST[+STEP], e.g. -t 1-2 -p 64,512\n");
}

/* Returns 0, or EXIT_USAGE after printing the error. */
static int parse_bench_args(int argc, char **argv, bench_opts *o) {
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const bool has_value = i + 1 < argc;
        const char *v = has_value ? argv[i + 1] : NULL;
#define IS(s, l) (strcmp(a, s) == 0 || strcmp(a, l) == 0)
        if (strcmp(a, "--probe") == 0) {
            o->probe_force = true;
            continue;
        }
        if (strcmp(a, "--no-warmup") == 0) {
            o->no_warmup = true;
            continue;
        }
        if (strcmp(a, "--progress") == 0) {
            o->progress = true;
            continue;
        }
        if (strcmp(a, "--profile") == 0) {
            o->profile = true;
            continue;
        }
        if (strcmp(a, "--repack-cache") == 0) {
            o->weights.repack_cache = true;
            continue;
        }
        if (strcmp(a, "--no-repack") == 0) {
            o->weights.no_repack = true;
            continue;
        }
        if (strcmp(a, "--repack") == 0) {
            o->weights.repack = true;
            continue;
        }
        if (!IS("-m", "--model") && !IS("-p", "--n-prompt") && !IS("-n", "--n-gen") && !IS("-d", "--n-depth") &&
            !IS("-t", "--threads") && !IS("-np", "--parallel") && !IS("-b", "--batch-size") && !IS("-r", "--repetitions") &&
            !IS("-ctk", "--cache-type") && !IS("-o", "--output") && strcmp(a, "--probe-mb") != 0 &&
            strcmp(a, "--isa") != 0 && strcmp(a, "--bandwidth") != 0 && strcmp(a, "--walk") != 0)
            return usage_error("bench", "unknown option '%s'", a);
        if (!has_value) return usage_error("bench", "%s needs a value", a);
        i++;
        long n;
        bool ok = true;
        if (IS("-m", "--model")) {
            if (o->n_models >= BENCH_MAX_VALUES) return usage_error("bench", "at most %d models", BENCH_MAX_VALUES);
            o->models[o->n_models++] = v;
        } else if (IS("-p", "--n-prompt")) {
            ok = parse_int_list(v, 0, 1 << 20, &o->prompt);
        } else if (IS("-n", "--n-gen")) {
            ok = parse_int_list(v, 0, 1 << 20, &o->gen);
        } else if (IS("-d", "--n-depth")) {
            ok = parse_int_list(v, 0, 1 << 22, &o->depth);
        } else if (IS("-t", "--threads")) {
            ok = parse_int_list(v, 1, 1024, &o->threads);
        } else if (IS("-np", "--parallel")) {
            ok = parse_int_list(v, 1, BENCH_MAX_PARALLEL, &o->parallel);
        } else if (IS("-b", "--batch-size")) {
            ok = parse_long(v, 1, 65536, &n);
            o->n_batch = (int)n;
        } else if (IS("-r", "--repetitions")) {
            ok = parse_long(v, 1, 100000, &n);
            o->reps = (int)n;
        } else if (strcmp(a, "--probe-mb") == 0) {
            ok = parse_long(v, 1, 1 << 20, &n);
            o->probe_mb = (int)n;
        } else if (strcmp(a, "--bandwidth") == 0) {
            ok = strcmp(v, "around") == 0 || strcmp(v, "cached") == 0;
            o->bw_cached = strcmp(v, "cached") == 0;
        } else if (IS("-ctk", "--cache-type")) {
            ok = parse_cache_list(v, o);
        } else if (strcmp(a, "--walk") == 0) {
            ok = o->n_walks == 0 && parse_walk_list(v, o);
        } else if (strcmp(a, "--isa") == 0) {
            o->isa_name = v;
            const int isa = ts_isa_from_name(v);
            if (isa < 0 && strcmp(v, "auto") != 0)
                return usage_error("bench", "unknown instruction set '%s' for --isa (avx512, avxvnni, avx2, neon, scalar, auto)", v);
            if (isa >= 0 && !ts_isa_supported((enum ts_isa)isa))
                return usage_error("bench", "--isa %s: this build or CPU cannot run those kernels (best here: %s)", v,
                                   ts_isa_name(ts_isa_best()));
            o->isa = isa >= 0 ? (enum ts_isa)isa : ts_isa_best();
        } else if (IS("-o", "--output")) {
            ok = strcmp(v, "md") == 0 || strcmp(v, "json") == 0;
            o->json = strcmp(v, "json") == 0;
        }
#undef IS
        if (!ok) return usage_error("bench", "bad value '%s' for %s", v, a);
    }
    if (o->n_models == 0) return usage_error("bench", "no model given (-m MODEL)");
    if (!o->isa_name) o->isa = ts_isa_best();
    if (o->weights.no_repack && (o->weights.repack || o->weights.repack_cache))
        return usage_error("bench", "--no-repack excludes --repack and --repack-cache");
    if (o->prompt.n == 0) o->prompt = (int_list){{512}, 1};
    if (o->gen.n == 0) o->gen = (int_list){{128}, 1};
    if (o->depth.n == 0) o->depth = (int_list){{0}, 1};
    if (o->parallel.n == 0) o->parallel = (int_list){{1}, 1};
    if (o->threads.n == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        o->threads = (int_list){{cores > 0 && cores <= 1024 ? (int)cores : 1}, 1};
    }
    if (o->n_cache == 0) o->cache[o->n_cache++] = TS_CACHE_F16;
    return 0;
}

/* ---- memory bandwidth: probe, cached per CPU model and thread count ------------------------- */

typedef struct bandwidth {
    double gbs; /* 0 = unknown */
    bool cached;
    char measured_at[32]; /* RFC 3339 UTC */
    bool around; /* probed around each run of a test instead (bench_test.probe_gbs) */
} bandwidth;

/* A cached figure older than this is measured again: machines change (memory, BIOS, neighbours). */
/* How the probe reads (util/membw.c); a figure cached by another way of reading is measured again. */
#define BENCH_PROBE_METHOD "two-streams-or-one-32B"
#define BENCH_PROBE_MAX_AGE_S (7 * 24 * 3600)

/* ~/.cache/tiefsee/<kind>-<threads>.json (or $XDG_CACHE_HOME/tiefsee/...), kind "membw" for the
 * bandwidth probe, "flops" for the FMA peak probe (see peak_kind). Returns false if there is no home to put it in.
 * With mkdirs, creates the directories. */
static bool probe_cache_path(const char *kind, int n_threads, bool mkdirs, char *path, size_t cap) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char dir[900];
    int w;
    if (xdg && xdg[0] == '/')
        w = snprintf(dir, sizeof dir, "%s", xdg);
    else if (home && home[0])
        w = snprintf(dir, sizeof dir, "%s/.cache", home);
    else
        return false;
    if (w < 0 || (size_t)w >= sizeof dir - 16) return false;
    if (mkdirs) (void)mkdir(dir, 0755);
    strcat(dir, "/tiefsee");
    if (mkdirs && mkdir(dir, 0755) != 0 && errno != EEXIST) return false;
    w = snprintf(path, cap, "%s/%s-%d.json", dir, kind, n_threads);
    return w > 0 && (size_t)w < cap;
}

/* Seconds since the epoch of an RFC 3339 UTC time as written by probe_cache_write; -1 if malformed. */
static time_t parse_utc(const char *s) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return end && *end == '\0' ? timegm(&tm) : (time_t)-1;
}

/* The cached figure if it matches this CPU, thread count and buffer size and is recent; gbs 0 if not. */
static bandwidth probe_cache_read(int n_threads, const char *cpu, size_t bytes) {
    bandwidth bw = {.cached = true};
    char path[1024];
    if (!probe_cache_path("membw", n_threads, false, path, sizeof path)) return bw;
    json_t *root = json_load_file(path, 0, NULL);
    if (!root) return bw;
    json_t *c = json_object_get(root, "cpu_info"), *t = json_object_get(root, "n_threads"),
           *b = json_object_get(root, "buffer_bytes"), *g = json_object_get(root, "bandwidth_gbs"),
           *w = json_object_get(root, "measured_at"), *m = json_object_get(root, "method");
    if (json_is_string(c) && strcmp(json_string_value(c), cpu) == 0 && json_is_integer(t) &&
        json_is_string(m) && strcmp(json_string_value(m), BENCH_PROBE_METHOD) == 0 &&
        json_integer_value(t) == n_threads && json_is_integer(b) && json_integer_value(b) == (json_int_t)bytes &&
        json_is_number(g) && json_number_value(g) > 0 && isfinite(json_number_value(g)) && json_is_string(w)) {
        const time_t when = parse_utc(json_string_value(w)), now = time(NULL);
        if (when != (time_t)-1 && when <= now && now - when < BENCH_PROBE_MAX_AGE_S) {
            bw.gbs = json_number_value(g);
            snprintf(bw.measured_at, sizeof bw.measured_at, "%s", json_string_value(w));
        }
    }
    json_decref(root);
    return bw;
}

static void probe_cache_write(int n_threads, const char *cpu, size_t bytes, const ts_membw_result *r,
                              const char *when) {
    char path[1024], tmp[1100];
    if (!probe_cache_path("membw", n_threads, true, path, sizeof path)) return;
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    json_t *root = json_pack("{s:s, s:i, s:I, s:i, s:f, s:f, s:s, s:s}", "cpu_info", cpu, "n_threads", n_threads,
                             "buffer_bytes", (json_int_t)bytes, "passes", r->passes, "bandwidth_gbs", r->best_gbs,
                             "mean_gbs", r->mean_gbs, "measured_at", when, "method", BENCH_PROBE_METHOD);
    /* Write then rename, so a concurrent bench never reads half a file. */
    if (root && json_dump_file(root, tmp, JSON_INDENT(2)) == 0) {
        if (rename(tmp, path) != 0) remove(tmp);
    }
    json_decref(root);
}

/* The bandwidth probe runs in a helper process: its buffer (1 GiB by default) must not count in
 * this process's peak RSS, which the benchmark reports. The helper is forked once, at the start,
 * while this process is small and has no threads, and then measures on request (a socket pair:
 * the thread count and buffer size in, the result out). Forking at each probe, as before, made the
 * first generation run after the first probe up to 3x slower on a VM host: a fork write-protects
 * every private page of the parent for copy-on-write, the loaded weights included, and there the
 * first read of each page after its page-table entry changes is slow (a test program streaming
 * expert-shaped weights: 48 GB/s, then 15.7 right after a fork, 38-51 after; a second fork costs
 * nothing more). V2-Lite q4_0 tg64, four runs: 16.5 27.8 27.2 30.9 t/s, without probes 28.8 32.5
 * 30.1 30.4 (BENCHMARKS.md, "The first run after the probe"). */
typedef struct probe_request {
    int n_threads;
    size_t bytes;
} probe_request;

typedef struct probe_reply {
    int ok;
    ts_membw_result r;
    char msg[TS_ERR_LEN];
} probe_reply;

typedef struct probe_helper {
    pid_t pid; /* 0: not running */
    int fd;    /* this side of the socket pair */
} probe_helper;

/* Sends or receives exactly n bytes; false on EOF or an error. MSG_NOSIGNAL: a helper that died
 * makes send fail rather than raise SIGPIPE here. */
static bool send_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        const ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

static bool recv_all(int fd, void *buf, size_t n) {
    char *p = buf;
    while (n > 0) {
        const ssize_t k = recv(fd, p, n, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

static void probe_helper_serve(int fd) {
    probe_request q;
    while (recv_all(fd, &q, sizeof q)) { /* EOF: the benchmark is done */
        probe_reply a;
        memset(&a, 0, sizeof a);
        ts_err err = {""};
        a.ok = ts_membw_measure(q.n_threads, q.bytes, 5, &a.r, &err) == 0;
        if (!a.ok) snprintf(a.msg, sizeof a.msg, "%s", err.msg);
        if (!send_all(fd, &a, sizeof a)) break;
    }
    _exit(0);
}

static int probe_helper_start(probe_helper *h, ts_err *err) {
    int fds[2];
    h->pid = 0;
    h->fd = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
        return ts_fail(err, "bandwidth probe: socketpair: %s", strerror(errno));
    fflush(NULL);
    const pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return ts_fail(err, "bandwidth probe: fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(fds[0]);
        probe_helper_serve(fds[1]);
    }
    close(fds[1]);
    h->pid = pid;
    h->fd = fds[0];
    return 0;
}

static void probe_helper_stop(probe_helper *h) {
    if (h->pid <= 0) return;
    close(h->fd); /* the helper reads EOF and exits */
    while (waitpid(h->pid, NULL, 0) < 0 && errno == EINTR) {
    }
    h->pid = 0;
    h->fd = -1;
}

static int probe_in_helper(probe_helper *h, int n_threads, size_t bytes, ts_membw_result *out, ts_err *err) {
    if (!h || h->pid <= 0) return ts_fail(err, "bandwidth probe: no helper process");
    probe_request q;
    memset(&q, 0, sizeof q); /* no uninitialized padding on the wire */
    q.n_threads = n_threads;
    q.bytes = bytes;
    probe_reply a;
    if (!send_all(h->fd, &q, sizeof q) || !recv_all(h->fd, &a, sizeof a))
        return ts_fail(err, "bandwidth probe with %d threads failed: its helper process ended", n_threads);
    if (!a.ok) {
        a.msg[sizeof a.msg - 1] = '\0';
        return ts_fail(err, "bandwidth probe with %d threads failed (%s)", n_threads, a.msg);
    }
    *out = a.r;
    return 0;
}

static bandwidth measure_bandwidth(const bench_opts *o, probe_helper *helper, int n_threads, const char *cpu) {
    const size_t bytes = (size_t)o->probe_mb << 20;
    /* The key is the size actually read (rounded to whole lines per thread), as stored. */
    const size_t granule = 2 * 64 * (size_t)n_threads, key_bytes = bytes - bytes % granule;
    if (!o->probe_force) {
        bandwidth cached = probe_cache_read(n_threads, cpu, key_bytes);
        if (cached.gbs > 0) return cached;
    }
    if (o->progress) fprintf(stderr, "bench: measuring read bandwidth with %d threads (%d MiB)\n", n_threads, o->probe_mb);
    ts_membw_result r = {0};
    ts_err err = {""};
    if (probe_in_helper(helper, n_threads, bytes, &r, &err) != 0) {
        fprintf(stderr, "tiefsee: bench: %s; roofline figures left out\n", err.msg);
        return (bandwidth){.gbs = 0};
    }
    bandwidth bw = {.gbs = r.best_gbs};
    time_t now = time(NULL);
    strftime(bw.measured_at, sizeof bw.measured_at, "%FT%TZ", gmtime(&now));
    probe_cache_write(n_threads, cpu, r.bytes, &r, bw.measured_at);
    return bw;
}

/* ---- CPU arithmetic peak: probe, cached like the bandwidth -------------------------------------- */

typedef struct cpu_peak {
    double gflops; /* 0 = unknown */
    bool cached;
    char measured_at[32]; /* RFC 3339 UTC */
    char kernel[16];      /* "avx2", "avx512", "neon", "scalar" */
} cpu_peak;

/* The cache file's kind: "flops" for the best kernel this CPU has, "flops-avx2" etc. for a lesser
 * one chosen with --isa (so that alternating runs do not re-measure each other's figure). */
static void peak_kind(const char *kernel, char *kind, size_t cap) {
    if (strcmp(kernel, ts_fma_probe_isa_name(ts_fma_probe_isa())) == 0)
        snprintf(kind, cap, "flops");
    else
        snprintf(kind, cap, "flops-%s", kernel);
}

/* The cached peak if it matches this CPU, thread count and kernel and is recent; gflops 0 if not. */
static cpu_peak peak_cache_read(int n_threads, const char *cpu, const char *kernel) {
    cpu_peak pk = {0, true, "", ""};
    char path[1024], kind[32];
    peak_kind(kernel, kind, sizeof kind);
    if (!probe_cache_path(kind, n_threads, false, path, sizeof path)) return pk;
    json_t *root = json_load_file(path, 0, NULL);
    if (!root) return pk;
    json_t *c = json_object_get(root, "cpu_info"), *t = json_object_get(root, "n_threads"),
           *k = json_object_get(root, "kernel"), *g = json_object_get(root, "peak_gflops"),
           *w = json_object_get(root, "measured_at");
    if (json_is_string(c) && strcmp(json_string_value(c), cpu) == 0 && json_is_integer(t) &&
        json_integer_value(t) == n_threads && json_is_string(k) && strcmp(json_string_value(k), kernel) == 0 &&
        json_is_number(g) && json_number_value(g) > 0 && isfinite(json_number_value(g)) && json_is_string(w)) {
        const time_t when = parse_utc(json_string_value(w)), now = time(NULL);
        if (when != (time_t)-1 && when <= now && now - when < BENCH_PROBE_MAX_AGE_S) {
            pk.gflops = json_number_value(g);
            snprintf(pk.measured_at, sizeof pk.measured_at, "%s", json_string_value(w));
            snprintf(pk.kernel, sizeof pk.kernel, "%s", kernel);
        }
    }
    json_decref(root);
    return pk;
}

static void peak_cache_write(int n_threads, const char *cpu, const ts_flops_result *r, const char *when) {
    char path[1024], tmp[1100], kind[32];
    peak_kind(ts_fma_probe_isa_name(r->isa), kind, sizeof kind);
    if (!probe_cache_path(kind, n_threads, true, path, sizeof path)) return;
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    json_t *root = json_pack("{s:s, s:i, s:s, s:i, s:f, s:f, s:s}", "cpu_info", cpu, "n_threads", n_threads, "kernel",
                             ts_fma_probe_isa_name(r->isa), "passes", r->passes, "peak_gflops", r->best_gflops,
                             "mean_gflops", r->mean_gflops, "measured_at", when);
    if (root && json_dump_file(root, tmp, JSON_INDENT(2)) == 0) {
        if (rename(tmp, path) != 0) remove(tmp);
    }
    json_decref(root);
}

/* Runs in this process (no buffer to keep out of the RSS), after the bandwidth probes have forked:
 * its threads are joined before any model is loaded. 5 passes of ~0.1 s after calibration. */
static cpu_peak measure_peak(const bench_opts *o, int n_threads, const char *cpu) {
    const enum ts_isa probe_isa = ts_fma_probe_isa_for(o->isa);
    const char *kernel = ts_fma_probe_isa_name(probe_isa);
    if (!o->probe_force) {
        cpu_peak cached = peak_cache_read(n_threads, cpu, kernel);
        if (cached.gflops > 0) return cached;
    }
    if (o->progress) fprintf(stderr, "bench: measuring F32 FMA peak with %d threads (%s)\n", n_threads, kernel);
    ts_flops_result r;
    ts_err err = {""};
    if (ts_flops_measure_isa(probe_isa, n_threads, 0.1, 5, &r, &err) != 0) {
        fprintf(stderr, "tiefsee: bench: %s; attention peak fraction left out\n", err.msg);
        return (cpu_peak){0, false, "", ""};
    }
    cpu_peak pk = {r.best_gflops, false, "", ""};
    snprintf(pk.kernel, sizeof pk.kernel, "%s", ts_fma_probe_isa_name(r.isa));
    time_t now = time(NULL);
    strftime(pk.measured_at, sizeof pk.measured_at, "%FT%TZ", gmtime(&now));
    peak_cache_write(n_threads, cpu, &r, pk.measured_at);
    return pk;
}

/* ---- running tests ----------------------------------------------------------------------------- */

typedef struct bench_run {
    ts_model *model;
    ts_context *ctx;
    int n_vocab, n_batch;
    bool add_bos;
    ts_token bos;
    ts_token *tokens;
    int32_t *pos, *seq;
    bool *want;
    float *logits; /* one row per sequence of a parallel tg step */
    /* Greedy: the library's sampler, as `run` and `serve` pick tokens (its argmax is vectorized; a
     * scalar loop here took 1.2 % of a qwen1.5b token while the other threads waited). */
    ts_sampler *greedy;
    int prefix_len[BENCH_MAX_PARALLEL]; /* positions 0..prefix_len[s]-1 of sequence s hold the depth stream */
    uint64_t rng;
} bench_run;

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static ts_token random_token(bench_run *r) { return (ts_token)(splitmix64(&r->rng) % (uint64_t)r->n_vocab); }

/* Token at position i of the depth stream: a function of i alone, so the prefix for one depth is
 * the start of the prefix for a larger one and can be extended instead of recomputed. */
static ts_token depth_token(const bench_run *r, int i) {
    if (i == 0 && r->add_bos && r->bos >= 0) return r->bos;
    uint64_t s = 0xD1B54A32D192ED03ull ^ (uint64_t)i;
    return (ts_token)(splitmix64(&s) % (uint64_t)r->n_vocab);
}

/* Decodes tokens[0..n) (r->tokens is the caller's buffer of n tokens) at positions start.. of
 * sequence seq, in n_batch chunks; logits of the last token of each chunk land in r->logits. */
static int decode_chunks(bench_run *r, const ts_token *tokens, int n, int start, int seq, char err[TS_ERR_LEN]) {
    for (int done = 0; done < n;) {
        const int k = n - done < r->n_batch ? n - done : r->n_batch;
        for (int i = 0; i < k; i++) {
            r->pos[i] = start + done + i;
            r->seq[i] = seq;
        }
        ts_batch b = {k, tokens + done, r->pos, r->seq, NULL};
        if (ts_decode(r->ctx, &b, r->logits, err) != 0) return -1;
        done += k;
    }
    return 0;
}

/* Leaves exactly `depth` positions of the depth stream in sequence seq's cache (untimed). */
static int set_depth_seq(bench_run *r, int depth, int seq, char err[TS_ERR_LEN]) {
    int *have = &r->prefix_len[seq];
    if (*have >= depth) {
        ts_seq_truncate(r->ctx, seq, depth);
        *have = depth;
        return 0;
    }
    ts_seq_truncate(r->ctx, seq, *have);
    while (*have < depth) {
        const int k = depth - *have < r->n_batch ? depth - *have : r->n_batch;
        for (int i = 0; i < k; i++) r->tokens[i] = depth_token(r, *have + i);
        if (decode_chunks(r, r->tokens, k, *have, seq, err) != 0) {
            ts_seq_truncate(r->ctx, seq, 0);
            *have = 0;
            return -1;
        }
        *have += k;
    }
    return 0;
}

/* The same for sequences 0..n_seq-1. */
static int set_depth(bench_run *r, int depth, int n_seq, char err[TS_ERR_LEN]) {
    for (int seq = 0; seq < n_seq; seq++)
        if (set_depth_seq(r, depth, seq, err) != 0) return -1;
    return 0;
}

/* One pp run: n_prompt random tokens after `depth` cached ones, chunked by n_batch. */
static int run_prompt(bench_run *r, int depth, int n_prompt, char err[TS_ERR_LEN]) {
    for (int done = 0; done < n_prompt;) {
        const int k = n_prompt - done < r->n_batch ? n_prompt - done : r->n_batch;
        for (int i = 0; i < k; i++) r->tokens[i] = random_token(r);
        /* Like llama-bench: a prompt at the start of a sequence begins with BOS when the model adds one. */
        if (done == 0 && depth == 0 && r->add_bos && r->bos >= 0) r->tokens[0] = r->bos;
        if (decode_chunks(r, r->tokens, k, depth + done, 0, err) != 0) return -1;
        done += k;
    }
    return 0;
}

/* One tg run: n_gen decode steps after `depth` cached positions, each step one token of each of
 * sequences 0..n_par-1 in one batch (one token for n_par = 1, as llama-bench), greedy from random
 * starts. */
static int run_gen(bench_run *r, int depth, int n_gen, int n_par, char err[TS_ERR_LEN]) {
    for (int s = 0; s < n_par; s++) {
        r->tokens[s] = depth == 0 && r->add_bos && r->bos >= 0 ? r->bos : random_token(r);
        r->seq[s] = s;
        r->want[s] = true;
    }
    for (int i = 0; i < n_gen; i++) {
        for (int s = 0; s < n_par; s++) r->pos[s] = depth + i;
        ts_batch b = {n_par, r->tokens, r->pos, r->seq, r->want};
        if (ts_decode(r->ctx, &b, r->logits, err) != 0) return -1;
        for (int s = 0; s < n_par; s++) r->tokens[s] = ts_sampler_sample(r->greedy, r->logits + (size_t)s * r->n_vocab);
    }
    return 0;
}

/* ---- results ----------------------------------------------------------------------------------- */

typedef struct model_stats {
    const char *path;
    char type_desc[160];
    uint64_t size, n_params, active_bytes;
    uint64_t attn_flops_per_position; /* ts_model_attention_flops_per_token(m, 1) */
    double load_s, ttft_s;
    bool have_ttft;
    bool repacked;
    double repack_s; /* part of load_s */
    uint64_t repack_bytes;
    int repack_cache; /* enum ts_repack_cache_state (--repack-cache) */
} model_stats;

typedef struct bench_test {
    const model_stats *ms;
    int n_threads, n_batch, n_prompt, n_gen, n_depth;
    int n_parallel; /* sequences generating together (tg) */
    enum ts_cache_type cache;
    char time[32];
    const char *walk; /* --walk: this row's walk; NULL without the option */
    uint64_t *samples_ns;
    int n_samples;
    /* --bandwidth around: read bandwidth probed before the first run and after each run (0 where a
     * probe failed). The tests of several walks share one sequence of probes: run i of a test lies
     * between probes run_probe[i] and run_probe[i] + 1 (i, with one walk). */
    double *probe_gbs;
    int n_probes;
    int *run_probe;
    uint64_t kv_bytes_per_position;
    bandwidth bw;
    cpu_peak peak;
    /* Share of the CPU time during the timed runs that the hypervisor gave to other guests
     * (util/cpu_stat.h), -1 where it cannot be told. */
    double steal_fraction;
    /* --profile: the step counters summed over the timed runs, and those runs' whole time (the
     * part outside ts_decode is the sampling and the loop around it). */
    bool have_profile;
    ts_profile profile;
    double profiled_s;
} bench_test;

static double sample_ts(const bench_test *t, int i) {
    return t->samples_ns[i] ? 1e9 * (double)(t->n_prompt + t->n_gen * t->n_parallel) / (double)t->samples_ns[i] : 0;
}

typedef struct test_summary {
    double avg_ns, sd_ns, avg_ts, sd_ts;
    double bytes_per_token, kv_bytes_read, achieved_gbs, roofline; /* tg only; 0 otherwise */
    double bandwidth_gbs; /* the roofline's denominator: achieved_gbs / roofline; 0 = unknown */
    double attn_flops_per_token, attn_gflops, attn_peak_fraction;   /* tg only; 0 otherwise */
} test_summary;

static test_summary summarize(const bench_test *t) {
    test_summary s = {0};
    const int n = t->n_samples;
    for (int i = 0; i < n; i++) {
        s.avg_ns += (double)t->samples_ns[i] / n;
        s.avg_ts += sample_ts(t, i) / n;
    }
    /* Sample standard deviation (n - 1), as llama-bench computes it; 0 for a single run. */
    if (n > 1) {
        double qn = 0, qt = 0;
        for (int i = 0; i < n; i++) {
            const double dn = (double)t->samples_ns[i] - s.avg_ns, dt = sample_ts(t, i) - s.avg_ts;
            qn += dn * dn;
            qt += dt * dt;
        }
        s.sd_ns = sqrt(qn / (n - 1));
        s.sd_ts = sqrt(qt / (n - 1));
    }
    if (t->n_gen > 0 && t->n_prompt == 0) {
        /* Token i of the test sits at position D + i and reads D + i + 1 cached positions. */
        s.kv_bytes_read = (double)t->kv_bytes_per_position * ((double)t->n_depth + (t->n_gen + 1) / 2.0);
        /* Several sequences per step share one pass over the weights, but which MoE experts that
         * pass reads depends on the tokens' choices: no byte count (nor roofline) for them. */
        if (t->n_parallel == 1) {
            s.bytes_per_token = (double)t->ms->active_bytes + s.kv_bytes_read;
            s.achieved_gbs = s.avg_ts * s.bytes_per_token / 1e9;
            if (t->bw.around) {
                /* Each run against the mean of the probes on either side of it, then the mean of
                 * those fractions: a change of the memory's speed between runs hits only the runs
                 * it happened next to. */
                bool ok = n > 0 && t->n_probes >= n + 1;
                double sum = 0;
                for (int i = 0; ok && i < n; i++) {
                    const int k = t->run_probe[i];
                    ok = k >= 0 && k + 1 < t->n_probes;
                    if (!ok) break;
                    const double before = t->probe_gbs[k], after = t->probe_gbs[k + 1];
                    ok = before > 0 && after > 0;
                    if (ok) sum += sample_ts(t, i) * s.bytes_per_token / 1e9 / (0.5 * (before + after));
                }
                s.roofline = ok ? sum / n : 0;
            } else {
                s.roofline = t->bw.gbs > 0 ? s.achieved_gbs / t->bw.gbs : 0;
            }
            s.bandwidth_gbs = s.roofline > 0 ? s.achieved_gbs / s.roofline : 0;
        }
        /* Same average depth as the KV bytes: the count is exactly linear in the positions read. */
        s.attn_flops_per_token = (double)t->ms->attn_flops_per_position * ((double)t->n_depth + (t->n_gen + 1) / 2.0);
        s.attn_gflops = s.avg_ts * s.attn_flops_per_token / 1e9;
        s.attn_peak_fraction = t->peak.gflops > 0 ? s.attn_gflops / t->peak.gflops : 0;
    }
    return s;
}

/* "pp512", "tg128", "tg64 @ d4096", "tg64 x4 @ d4096" (4 sequences generating together). */
static void test_name(const bench_test *t, char *buf, size_t cap) {
    int w = t->n_gen == 0 ? snprintf(buf, cap, "pp%d", t->n_prompt) : snprintf(buf, cap, "tg%d", t->n_gen);
    if (t->n_parallel > 1 && w > 0 && (size_t)w < cap) w += snprintf(buf + w, cap - (size_t)w, " x%d", t->n_parallel);
    if (t->n_depth > 0 && w > 0 && (size_t)w < cap) snprintf(buf + w, cap - (size_t)w, " @ d%d", t->n_depth);
}

static uint64_t peak_rss_bytes(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0 || ru.ru_maxrss < 0) return 0;
    return (uint64_t)ru.ru_maxrss * 1024; /* Linux reports KiB */
}

typedef struct bench_output {
    const bench_opts *o;
    char cpu[256];
    json_t *records; /* json mode */
    bool header_done;
    /* md mode: the bandwidth and "attention at depth ..." lines of the tg rows, printed under the table (lines
     * between rows would break it). Grown as needed; NULL after an allocation failure. */
    char *notes;
    size_t notes_len, notes_cap;
    bool notes_oom;
    probe_helper *probe; /* runs the bandwidth probes; NULL when no test generates */
} bench_output;

/* Appends one formatted line to out->notes. */
static void note_line(bench_output *out, const char *line) {
    const size_t n = strlen(line);
    if (out->notes_oom) return;
    if (out->notes_len + n + 2 > out->notes_cap) {
        size_t cap = out->notes_cap ? out->notes_cap : 1024;
        while (out->notes_len + n + 2 > cap) cap *= 2;
        char *p = realloc(out->notes, cap);
        if (!p) {
            out->notes_oom = true; /* the table is complete anyway; only the extra lines are lost */
            return;
        }
        out->notes = p;
        out->notes_cap = cap;
    }
    memcpy(out->notes + out->notes_len, line, n);
    out->notes_len += n;
    out->notes[out->notes_len++] = '\n';
    out->notes[out->notes_len] = '\0';
}

static void human_size(char *buf, size_t cap, uint64_t bytes) {
    if (bytes < (1ull << 30))
        snprintf(buf, cap, "%.2f MiB", (double)bytes / 1024.0 / 1024.0);
    else
        snprintf(buf, cap, "%.2f GiB", (double)bytes / 1024.0 / 1024.0 / 1024.0);
}

static void human_params(char *buf, size_t cap, uint64_t n) {
    if (n < 1000000000ull)
        snprintf(buf, cap, "%.2f M", (double)n / 1e6);
    else
        snprintf(buf, cap, "%.2f B", (double)n / 1e9);
}

/* The columns follow llama-bench's markdown printer (widths, right-aligned numbers), then ours. */
static void md_header(bench_output *out) {
    const bench_opts *o = out->o;
    printf("| %-30s | %10s | %10s | %-10s | %7s |", "model", "size", "params", "backend", "threads");
    if (o->n_cache > 1 || o->cache[0] != TS_CACHE_F16) printf(" %-6s |", "type_k");
    if (o->n_batch != 512) printf(" %7s |", "n_batch");
    if (o->n_walks > 0) printf(" %-9s |", "walk");
    printf(" %15s | %20s | %8s | %10s |\n", "test", "t/s", "GB/s", "% roofline");
    printf("| %s | %s | %s | %s | %s |", "------------------------------", "---------:", "---------:", "----------",
           "------:");
    if (o->n_cache > 1 || o->cache[0] != TS_CACHE_F16) printf(" ------ |");
    if (o->n_batch != 512) printf(" ------: |");
    if (o->n_walks > 0) printf(" --------- |");
    printf(" --------------: | -------------------: | -------: | ---------: |\n");
}

/* md mode: "read bandwidth around tg128 (...): 63.56 → 41.20 → 36.80 GB/s, ..." under the table. */
static void bandwidth_note(bench_output *out, const bench_test *t, const test_summary *s, const char *name) {
    char line[640];
    int w = snprintf(line, sizeof line, "read bandwidth around %s (%d threads, %s) before each run and after the last:", name,
                     t->n_threads, t->ms->type_desc);
    double lo = 0, hi = 0;
    for (int i = 0; i < t->n_probes && w > 0 && (size_t)w < sizeof line - 64; i++) {
        const double g = t->probe_gbs[i];
        w += snprintf(line + w, sizeof line - (size_t)w, "%s%.2f", i ? ", " : " ", g);
        lo = i == 0 || g < lo ? g : lo;
        hi = i == 0 || g > hi ? g : hi;
    }
    if (w > 0 && (size_t)w < sizeof line - 64) w += snprintf(line + w, sizeof line - (size_t)w, " GB/s");
    if (s->roofline <= 0) {
        if (w > 0 && (size_t)w < sizeof line) snprintf(line + w, sizeof line - (size_t)w, "; a probe failed, no roofline");
    } else if (hi > 1.1 * lo && w > 0 && (size_t)w < sizeof line) {
        snprintf(line + w, sizeof line - (size_t)w,
                 "; the memory's speed changed by %.0f %% during the test: each run's roofline is taken against the probes on either side of it",
                 100.0 * (hi / lo - 1.0));
    }
    note_line(out, line);
}

/* A number, or null when the figure does not apply / is unknown (keeps the JSON valid: no NaN). */
static json_t *json_real_or_null(double v, bool have) { return have && isfinite(v) ? json_real(v) : json_null(); }

/* --profile: one row per step that ran, then "decode_rest" (inside ts_decode, outside every step:
 * batch checks and glue) and "outside_decode" (the timed runs' time outside ts_decode: sampling
 * the next token and the loop around it). Per token = per token decoded in the timed runs. */
typedef struct profile_row {
    const char *name;
    double ms_per_token, share, calls_per_token, weight_gbs, weight_bytes_per_token; /* gbs 0: reads none */
} profile_row;
#define PROFILE_ROWS (TS_STEP_COUNT + 2)

static int profile_rows(const bench_test *t, profile_row rows[PROFILE_ROWS]) {
    const ts_profile *p = &t->profile;
    if (!t->have_profile || p->tokens == 0 || t->profiled_s <= 0) return 0;
    const double tokens = (double)p->tokens;
    int n = 0;
    double steps_s = 0;
    for (int i = 0; i < TS_STEP_COUNT; i++) {
        const ts_step_stats *st = &p->step[i];
        if (st->calls == 0) continue;
        steps_s += st->seconds;
        rows[n++] = (profile_row){.name = ts_step_name((enum ts_step)i),
                                  .ms_per_token = 1e3 * st->seconds / tokens,
                                  .share = st->seconds / t->profiled_s,
                                  .calls_per_token = (double)st->calls / tokens,
                                  .weight_gbs = st->seconds > 0 ? (double)st->weight_bytes / st->seconds / 1e9 : 0,
                                  .weight_bytes_per_token = (double)st->weight_bytes / tokens};
    }
    const double rest = p->seconds > steps_s ? p->seconds - steps_s : 0;
    const double outside = t->profiled_s > p->seconds ? t->profiled_s - p->seconds : 0;
    rows[n++] = (profile_row){.name = "decode_rest", .ms_per_token = 1e3 * rest / tokens, .share = rest / t->profiled_s};
    rows[n++] = (profile_row){.name = "outside_decode", .ms_per_token = 1e3 * outside / tokens,
                              .share = outside / t->profiled_s};
    return n;
}

/* md mode: the --profile table of a test, as lines under the main table. */
static void profile_note(bench_output *out, const bench_test *t, const char *name) {
    profile_row rows[PROFILE_ROWS];
    const int n = profile_rows(t, rows);
    if (n == 0) return;
    char line[320];
    snprintf(line, sizeof line, "profile of %s (%d threads, %s): %.3f ms per token over %" PRIu64 " tokens, by step:", name,
             t->n_threads, t->ms->type_desc, 1e3 * t->profiled_s / (double)t->profile.tokens, t->profile.tokens);
    note_line(out, line);
    note_line(out, "  step            ms/token    share  calls/token  weights MB/token  weights GB/s");
    for (int i = 0; i < n; i++) {
        const profile_row *r = &rows[i];
        if (r->weight_gbs > 0)
            snprintf(line, sizeof line, "  %-14s %9.3f  %6.1f %%  %11.2f  %16.2f  %12.2f", r->name, r->ms_per_token,
                     100.0 * r->share, r->calls_per_token, r->weight_bytes_per_token / 1e6, r->weight_gbs);
        else if (r->calls_per_token > 0)
            snprintf(line, sizeof line, "  %-14s %9.3f  %6.1f %%  %11.2f  %16s  %12s", r->name, r->ms_per_token,
                     100.0 * r->share, r->calls_per_token, "-", "-");
        else
            snprintf(line, sizeof line, "  %-14s %9.3f  %6.1f %%  %11s  %16s  %12s", r->name, r->ms_per_token,
                     100.0 * r->share, "-", "-", "-");
        note_line(out, line);
    }
}

static json_t *profile_json(const bench_test *t) {
    profile_row rows[PROFILE_ROWS];
    const int n = profile_rows(t, rows);
    if (n == 0) return json_null();
    json_t *steps = json_array();
    for (int i = 0; i < n; i++) {
        const profile_row *r = &rows[i];
        json_t *o = json_object();
        json_object_set_new(o, "step", json_string(r->name));
        json_object_set_new(o, "ms_per_token", json_real(r->ms_per_token));
        json_object_set_new(o, "share", json_real(r->share));
        json_object_set_new(o, "calls_per_token", json_real(r->calls_per_token));
        json_object_set_new(o, "weight_bytes_per_token", json_real(r->weight_bytes_per_token));
        json_object_set_new(o, "weight_gbs", json_real_or_null(r->weight_gbs, r->weight_gbs > 0));
        json_array_append_new(steps, o);
    }
    json_t *p = json_object();
    json_object_set_new(p, "tokens", json_integer((json_int_t)t->profile.tokens));
    json_object_set_new(p, "decode_calls", json_integer((json_int_t)t->profile.decodes));
    json_object_set_new(p, "seconds", json_real(t->profiled_s));
    json_object_set_new(p, "steps", steps);
    return p;
}

static void md_row(bench_output *out, const bench_test *t, const test_summary *s) {
    const bench_opts *o = out->o;
    if (!out->header_done) {
        md_header(out);
        out->header_done = true;
    }
    char size[32], params[32], name[48], ts[64];
    human_size(size, sizeof size, t->ms->size);
    human_params(params, sizeof params, t->ms->n_params);
    test_name(t, name, sizeof name);
    if (t->walk) { /* the notes under the table say which row they belong to */
        const size_t w = strlen(name);
        snprintf(name + w, sizeof name - w, ", %s", t->walk);
    }
    snprintf(ts, sizeof ts, "%.2f ± %.2f", s->avg_ts, s->sd_ts);
    printf("| %-30s | %10s | %10s | %-10s | %7d |", t->ms->type_desc, size, params, "CPU", t->n_threads);
    if (o->n_cache > 1 || o->cache[0] != TS_CACHE_F16) printf(" %-6s |", ts_cache_type_name(t->cache));
    if (o->n_batch != 512) printf(" %7d |", t->n_batch);
    if (o->n_walks > 0) printf(" %-9s |", t->walk);
    char test_col[48];
    test_name(t, test_col, sizeof test_col);
    printf(" %15s | %21s |", test_col, ts); /* 21: "±" is two bytes, one column */
    if (t->n_gen > 0) {
        if (s->achieved_gbs > 0)
            printf(" %8.2f |", s->achieved_gbs);
        else
            printf(" %8s |", "-");
        if (s->roofline > 0)
            printf(" %9.1f%% |\n", 100.0 * s->roofline);
        else
            printf(" %10s |\n", "-");
        char line[320], frac[64] = "peak unknown";
        if (t->bw.around && t->n_parallel == 1) bandwidth_note(out, t, s, name);
        if (t->peak.gflops > 0)
            snprintf(frac, sizeof frac, "%.2f %% of peak", 100.0 * s->attn_peak_fraction);
        snprintf(line, sizeof line,
                 "attention at depth %d (%s, %d threads, %s): %.3f MFLOP/token, %.3f GFLOP/s = %s",
                 t->n_depth, name, t->n_threads, t->ms->type_desc, s->attn_flops_per_token / 1e6, s->attn_gflops, frac);
        note_line(out, line);
    } else {
        printf(" %8s | %10s |\n", "-", "-");
    }
    /* Said only where it matters: 1 % of the time stolen is within any host's noise. */
    if (t->steal_fraction >= 0.01) {
        char line[512];
        snprintf(line, sizeof line,
                 "cpu steal time during %s (%d threads, %s): %.0f %% of the vCPUs' time went to other guests of the "
                 "hypervisor; this machine gives more when it is not shared",
                 name, t->n_threads, t->ms->type_desc, 100.0 * t->steal_fraction);
        note_line(out, line);
    }
    profile_note(out, t, name);
    fflush(stdout);
}


static void json_record(bench_output *out, const bench_test *t, const test_summary *s) {
    json_t *r = json_object();
    json_t *sns = json_array(), *sts = json_array();
    for (int i = 0; i < t->n_samples; i++) {
        json_array_append_new(sns, json_integer((json_int_t)t->samples_ns[i]));
        json_array_append_new(sts, json_real(sample_ts(t, i)));
    }
    const bool tg = t->n_gen > 0;
    /* llama-bench's fields, in its order. */
    json_object_set_new(r, "build_commit", json_string(TIEFSEE_VERSION));
    json_object_set_new(r, "build_number", json_integer(0));
    json_object_set_new(r, "cpu_info", json_string(out->cpu));
    json_object_set_new(r, "gpu_info", json_string(""));
    json_object_set_new(r, "backends", json_string("CPU"));
    json_object_set_new(r, "model_filename", json_string(t->ms->path));
    json_object_set_new(r, "model_type", json_string(t->ms->type_desc));
    json_object_set_new(r, "model_size", json_integer((json_int_t)t->ms->size));
    json_object_set_new(r, "model_n_params", json_integer((json_int_t)t->ms->n_params));
    json_object_set_new(r, "n_batch", json_integer(t->n_batch));
    json_object_set_new(r, "n_ubatch", json_integer(t->n_batch));
    json_object_set_new(r, "n_threads", json_integer(t->n_threads));
    json_object_set_new(r, "type_k", json_string(ts_cache_type_name(t->cache)));
    json_object_set_new(r, "type_v", json_string(ts_cache_type_name(t->cache)));
    json_object_set_new(r, "n_gpu_layers", json_integer(0));
    json_object_set_new(r, "n_prompt", json_integer(t->n_prompt));
    json_object_set_new(r, "n_gen", json_integer(t->n_gen));
    json_object_set_new(r, "n_depth", json_integer(t->n_depth));
    json_object_set_new(r, "n_parallel", json_integer(t->n_parallel)); /* ours, between llama-bench's */
    json_object_set_new(r, "test_time", json_string(t->time));
    json_object_set_new(r, "avg_ns", json_integer((json_int_t)llround(s->avg_ns)));
    json_object_set_new(r, "stddev_ns", json_integer((json_int_t)llround(s->sd_ns)));
    json_object_set_new(r, "avg_ts", json_real(s->avg_ts));
    json_object_set_new(r, "stddev_ts", json_real(s->sd_ts));
    json_object_set_new(r, "samples_ns", sns);
    json_object_set_new(r, "samples_ts", sts);
    /* Ours. Per-token traffic and roofline apply to generation tests only (null for pp). */
    json_object_set_new(r, "engine", json_string("tiefsee"));
    json_object_set_new(r, "kernels", json_string(ts_isa_name(out->o->isa)));
    json_object_set_new(r, "weight_bytes_per_token", json_integer((json_int_t)t->ms->active_bytes));
    json_object_set_new(r, "kv_bytes_per_position", json_integer((json_int_t)t->kv_bytes_per_position));
    const bool one = tg && t->n_parallel == 1; /* byte counts: one sequence only (summarize) */
    json_object_set_new(r, "bytes_per_token", json_real_or_null(s->bytes_per_token, one));
    json_object_set_new(r, "achieved_gbs", json_real_or_null(s->achieved_gbs, one));
    const double bw_gbs = t->bw.around ? s->bandwidth_gbs : t->bw.gbs;
    json_object_set_new(r, "bandwidth_gbs", json_real_or_null(bw_gbs, bw_gbs > 0));
    json_object_set_new(r, "bandwidth_cached", json_boolean(t->bw.cached));
    json_object_set_new(r, "bandwidth_measured_at", bw_gbs > 0 ? json_string(t->bw.measured_at) : json_null());
    /* "around": probed before each run and after the last (bandwidth_probes_gbs; bandwidth_gbs is
     * then achieved_gbs / roofline_fraction, the figure the runs were measured against); "run": one
     * figure for the thread count (cached or probed at the start); null where no roofline applies. */
    json_object_set_new(r, "bandwidth_probe", !one ? json_null() : json_string(t->bw.around ? "around" : "run"));
    json_t *probes = json_array();
    for (int i = 0; t->bw.around && i < t->n_probes; i++) json_array_append_new(probes, json_real_or_null(t->probe_gbs[i], t->probe_gbs[i] > 0));
    json_object_set_new(r, "bandwidth_probes_gbs", t->bw.around ? probes : (json_decref(probes), json_null()));
    /* --walk with several walks: their runs share the probes; run i lies between probes index[i]
     * and index[i] + 1 */
    json_t *index = json_array();
    for (int i = 0; t->bw.around && t->walk && i < t->n_samples; i++) json_array_append_new(index, json_integer(t->run_probe[i]));
    json_object_set_new(r, "bandwidth_probe_index", t->bw.around && t->walk ? index : (json_decref(index), json_null()));
    json_object_set_new(r, "walk", t->walk ? json_string(t->walk) : json_null());
    json_object_set_new(r, "roofline_fraction", json_real_or_null(s->roofline, one && s->roofline > 0));
    json_object_set_new(r, "attn_flops_per_position", json_integer((json_int_t)t->ms->attn_flops_per_position));
    json_object_set_new(r, "attn_flops_per_token", json_real_or_null(s->attn_flops_per_token, tg));
    json_object_set_new(r, "attn_gflops", json_real_or_null(s->attn_gflops, tg));
    json_object_set_new(r, "cpu_peak_gflops", json_real_or_null(t->peak.gflops, t->peak.gflops > 0));
    json_object_set_new(r, "cpu_peak_kernel", t->peak.gflops > 0 ? json_string(t->peak.kernel) : json_null());
    json_object_set_new(r, "cpu_peak_cached", json_boolean(t->peak.cached));
    json_object_set_new(r, "cpu_peak_measured_at", t->peak.gflops > 0 ? json_string(t->peak.measured_at) : json_null());
    json_object_set_new(r, "attn_peak_fraction", json_real_or_null(s->attn_peak_fraction, tg && t->peak.gflops > 0));
    json_object_set_new(r, "cpu_steal_fraction", json_real_or_null(t->steal_fraction, t->steal_fraction >= 0));
    json_object_set_new(r, "peak_rss_bytes", json_integer((json_int_t)peak_rss_bytes()));
    json_object_set_new(r, "profile", profile_json(t)); /* --profile, else null */
    json_object_set_new(r, "load_s", json_real(t->ms->load_s));
    json_object_set_new(r, "repack", json_boolean(t->ms->repacked));
    json_object_set_new(r, "repack_s", json_real_or_null(t->ms->repack_s, t->ms->repacked));
    json_object_set_new(r, "repack_bytes", json_integer((json_int_t)t->ms->repack_bytes));
    /* --repack-cache: "mapped" (an earlier run's file), "written" (made by this run), null (none) */
    json_object_set_new(r, "repack_cache", t->ms->repack_cache == TS_REPACK_CACHE_MAPPED    ? json_string("mapped")
                                           : t->ms->repack_cache == TS_REPACK_CACHE_WRITTEN ? json_string("written")
                                                                                            : json_null());
    json_object_set_new(r, "ttft_s", json_real_or_null(t->ms->ttft_s, t->ms->have_ttft));
    json_array_append_new(out->records, r);
}

static void emit(bench_output *out, const bench_test *t) {
    const test_summary s = summarize(t);
    if (out->o->json)
        json_record(out, t, &s);
    else
        md_row(out, t, &s);
}

/* ---- driver ------------------------------------------------------------------------------------ */

static int max_of(const int_list *l) {
    int m = 0;
    for (int i = 0; i < l->n; i++)
        if (l->v[i] > m) m = l->v[i];
    return m;
}

static void profile_add(ts_profile *sum, ts_profile p) {
    for (int i = 0; i < TS_STEP_COUNT; i++) {
        sum->step[i].calls += p.step[i].calls;
        sum->step[i].seconds += p.step[i].seconds;
        sum->step[i].weight_bytes += p.step[i].weight_bytes;
    }
    sum->decodes += p.decodes;
    sum->tokens += p.tokens;
    sum->seconds += p.seconds;
}

/* Switches the model to a test's walk (nothing to do without --walk). */
static int use_walk(bench_run *r, const bench_test *t, char err[TS_ERR_LEN]) {
    return t->walk ? ts_model_set_walk(r->model, t->walk, err) : 0;
}

/* Runs one test (warm-up + reps) on a ready context, in nv variants that differ only in the walk
 * (--walk; nv 1 without it), and emits each. The variants' timed runs take turns, in the order
 * A B .. B A, A B .. (every variant as often first as last): inside one process all of them see
 * the same bytes in the same minutes, which no comparison of two processes on a VM does (the same
 * binary twice differed by 4 % in t/s; BENCHMARKS.md, "Zen 4 once more"). shared_bw is the thread
 * count's bandwidth figure, replaced when this test proves the cached one stale. */
static int run_test(bench_output *out, bench_run *r, bench_test *tv, int nv, bandwidth *shared_bw, char err[TS_ERR_LEN]) {
    const bench_opts *o = out->o;
    bench_test *t0v = &tv[0]; /* what the variants share: sizes, threads, probes */
    time_t now = time(NULL);
    for (int v = 0; v < nv; v++) strftime(tv[v].time, sizeof tv[v].time, "%FT%TZ", gmtime(&now));
    char name[48];
    test_name(t0v, name, sizeof name);
    if (!o->no_warmup) {
        for (int v = 0; v < nv; v++) {
            if (o->progress) fprintf(stderr, "bench: %s, %d threads%s%s: warm-up\n", name, t0v->n_threads,
                                     tv[v].walk ? ", walk " : "", tv[v].walk ? tv[v].walk : "");
            if (use_walk(r, &tv[v], err) != 0 || set_depth(r, t0v->n_depth, t0v->n_parallel, err) != 0) return -1;
            if (t0v->n_prompt > 0 && run_prompt(r, t0v->n_depth, t0v->n_prompt, err) != 0) return -1;
            if (t0v->n_gen > 0 && run_gen(r, t0v->n_depth, 1, t0v->n_parallel, err) != 0) return -1;
        }
    }
    /* The roofline's denominator measured in the same minute as the test, before and after it: a
     * VM's memory speed moves from hour to hour (36 and 64 GB/s on one host in one afternoon), so a
     * figure probed earlier can put a test at half its real fraction or above 100 %. */
    const bool around = !o->bw_cached && t0v->n_gen > 0 && t0v->n_parallel == 1;
    bench_opts forced = *o;
    forced.probe_force = true;
    double *probes = t0v->probe_gbs; /* shared by the variants */
    int n_probes = 0;
    if (around) {
        const bandwidth first = measure_bandwidth(&forced, out->probe, t0v->n_threads, out->cpu);
        probes[n_probes++] = first.gbs;
        for (int v = 0; v < nv; v++) {
            tv[v].bw = (bandwidth){.around = true};
            memcpy(tv[v].bw.measured_at, first.measured_at, sizeof tv[v].bw.measured_at);
        }
    }
    /* Stolen time over the timed runs only (not the probes between them), read outside the timing. */
    uint64_t stolen[BENCH_MAX_WALKS] = {0}, elapsed[BENCH_MAX_WALKS] = {0};
    bool steal_known[BENCH_MAX_WALKS];
    for (int v = 0; v < nv; v++) steal_known[v] = true;
    for (int rep = 0; rep < o->reps; rep++) {
        for (int k = 0; k < nv; k++) {
            bench_test *t = &tv[rep % 2 == 0 ? k : nv - 1 - k];
            const int v = (int)(t - tv);
            if (o->progress)
                fprintf(stderr, "bench: %s, %d threads%s%s: run %d/%d\n", name, t->n_threads, t->walk ? ", walk " : "",
                        t->walk ? t->walk : "", rep + 1, o->reps);
            if (use_walk(r, t, err) != 0 || set_depth(r, t->n_depth, t->n_parallel, err) != 0) return -1;
            ts_cpu_times c0, c1;
            /* Profiling only the timed part (not set_depth's filling of the cache): counters cleared. */
            if (o->profile && ts_context_set_profiling(r->ctx, true) != 0) {
                snprintf(err, TS_ERR_LEN, "out of memory");
                return -1;
            }
            steal_known[v] = ts_cpu_times_now(&c0) && steal_known[v];
            const double start = now_seconds();
            if (t->n_prompt > 0 && run_prompt(r, t->n_depth, t->n_prompt, err) != 0) return -1;
            if (t->n_gen > 0 && run_gen(r, t->n_depth, t->n_gen, t->n_parallel, err) != 0) return -1;
            const double sec = now_seconds() - start;
            if (o->profile) {
                profile_add(&t->profile, ts_context_profile(r->ctx));
                ts_context_set_profiling(r->ctx, false);
                t->have_profile = true;
                t->profiled_s += sec;
            }
            /* A run shorter than a clock tick adds nothing; a counter that went back spoils the figure. */
            steal_known[v] = steal_known[v] && ts_cpu_times_now(&c1) && c1.total >= c0.total && c1.steal >= c0.steal;
            if (steal_known[v]) {
                stolen[v] += c1.steal - c0.steal;
                elapsed[v] += c1.total - c0.total;
            }
            if (around) t->run_probe[t->n_samples] = n_probes - 1;
            t->samples_ns[t->n_samples++] = (uint64_t)llround(sec * 1e9);
            if (around) probes[n_probes++] = measure_bandwidth(&forced, out->probe, t->n_threads, out->cpu).gbs;
        }
    }
    for (int v = 0; v < nv; v++) {
        bench_test *t = &tv[v];
        t->probe_gbs = probes;
        t->n_probes = n_probes;
        const ts_cpu_times none = {0, 0}, sum = {elapsed[v], stolen[v]};
        t->steal_fraction = steal_known[v] ? ts_cpu_steal_fraction(&none, &sum) : -1.0;
        /* Generation that read weights faster than the cached bandwidth figure allows proves that
         * figure stale (this machine's memory got faster since it was probed; VMs drift): probe
         * again, between tests, for this row and the ones after it. */
        if (!around && t->n_gen > 0 && t->n_parallel == 1 && t->bw.cached && summarize(t).roofline > 1.0) {
            if (o->progress) fprintf(stderr, "bench: %s read faster than the cached bandwidth figure: probing again\n", name);
            const bandwidth fresh = measure_bandwidth(&forced, out->probe, t->n_threads, out->cpu);
            if (fresh.gbs > 0) t->bw = *shared_bw = fresh;
        }
        emit(out, t);
    }
    return 0;
}

static void model_description(const ts_model *m, char *buf, size_t cap) {
    ts_model_info info;
    ts_model_get_info(m, &info);
    char size[32];
    if (info.n_params >= 1000000000ull)
        snprintf(size, sizeof size, "%.1fB", (double)info.n_params / 1e9);
    else
        snprintf(size, sizeof size, "%.0fM", (double)info.n_params / 1e6);
    snprintf(buf, cap, "%s %s %s", info.arch, size, info.weight_type);
}

typedef struct bench_footer {
    model_stats ms;
    uint64_t kv_bytes_per_position;
} bench_footer;

static int bench_one_model(bench_output *out, const char *path, bandwidth *bw, const cpu_peak *peak,
                           bench_footer *foot) {
    const bench_opts *o = out->o;
    char err[TS_ERR_LEN] = "";
    model_stats *ms = &foot->ms;
    ms->path = path;
    if (o->progress) fprintf(stderr, "bench: loading %s\n", path);
    ts_model *m = NULL;
    double t0 = now_seconds();
    if (ts_model_load_isa(path, o->isa_name, &m, err) != 0) {
        fprintf(stderr, "tiefsee: %s\n", err);
        return -1;
    }
    ts_repack_stats st;
    if (cli_prepare_weights(m, &o->weights, max_of(&o->threads), "tiefsee", false, &st) != 0) {
        ts_model_free(m);
        return -1;
    }
    if (st.bytes > 0) {
        ms->repacked = true;
        ms->repack_s = st.seconds;
        ms->repack_bytes = st.bytes;
        ms->repack_cache = st.cache;
    }
    ms->load_s = now_seconds() - t0;
    ts_model_info info;
    ts_model_get_info(m, &info);
    model_description(m, ms->type_desc, sizeof ms->type_desc);
    ms->size = info.weight_bytes;
    ms->n_params = info.n_params;
    ms->active_bytes = ts_model_active_bytes_per_token(m);
    ms->attn_flops_per_position = ts_model_attention_flops_per_token(m, 1);

    const int max_depth = max_of(&o->depth), max_test = max_of(&o->prompt) > max_of(&o->gen) ? max_of(&o->prompt)
                                                                                                : max_of(&o->gen);
    const int n_ctx = max_depth + (max_test > BENCH_TTFT_PROMPT ? max_test : BENCH_TTFT_PROMPT);
    bench_run r = {.model = m, .n_vocab = info.n_vocab, .n_batch = o->n_batch, .add_bos = info.add_bos, .bos = info.bos,
                   .rng = 0x7469656673656521ull};
    const int max_par = max_of(&o->parallel);
    const int batch_cap = o->n_batch > max_par ? o->n_batch : max_par; /* a pp chunk or a parallel tg step */
    r.tokens = malloc((size_t)batch_cap * sizeof *r.tokens);
    r.pos = malloc((size_t)batch_cap * sizeof *r.pos);
    r.seq = malloc((size_t)batch_cap * sizeof *r.seq);
    r.want = malloc((size_t)max_par * sizeof *r.want);
    r.logits = malloc((size_t)max_par * (size_t)info.n_vocab * sizeof *r.logits);
    ts_sampler_params greedy = ts_sampler_default_params();
    greedy.temp = 0.0f;
    greedy.repeat_penalty = 1.0f;
    r.greedy = info.n_vocab > 0 ? ts_sampler_new(&greedy, info.n_vocab) : NULL;
    const int nv = o->n_walks > 0 ? o->n_walks : 1; /* rows per test: one per walk */
    const size_t runs = (size_t)nv * (size_t)o->reps;
    uint64_t *samples = malloc(runs * sizeof *samples);
    double *probes = malloc((runs + 1) * sizeof *probes);
    int *run_probe = malloc(runs * sizeof *run_probe);
    int rc = 0;
    if (!r.tokens || !r.pos || !r.seq || !r.want || !r.logits || !r.greedy || !samples || !probes || !run_probe || info.n_vocab <= 0) {
        fprintf(stderr, "tiefsee: bench: out of memory\n");
        rc = -1;
    }
    for (int ci = 0; rc == 0 && ci < o->n_cache; ci++) {
        for (int ti = 0; rc == 0 && ti < o->threads.n; ti++) {
            ts_context_params cp = ts_context_default_params();
            cp.n_ctx = n_ctx;
            cp.n_batch = batch_cap;
            cp.n_threads = o->threads.v[ti];
            cp.n_seq_max = max_par;
            cp.cache_type = o->cache[ci];
            const double tc = now_seconds();
            if (ts_context_new(m, &cp, &r.ctx, err) != 0) {
                fprintf(stderr, "tiefsee: %s\n", err);
                rc = -1;
                break;
            }
            memset(r.prefix_len, 0, sizeof r.prefix_len);
            if (!ms->have_ttft) {
                /* Time to first token: the first prompt this process evaluates on the model. */
                ts_token prompt[BENCH_TTFT_PROMPT];
                for (int i = 0; i < BENCH_TTFT_PROMPT; i++) prompt[i] = depth_token(&r, i);
                if (decode_chunks(&r, prompt, BENCH_TTFT_PROMPT, 0, 0, err) != 0) {
                    fprintf(stderr, "tiefsee: %s\n", err);
                    rc = -1;
                } else {
                    ms->ttft_s = ms->load_s + (now_seconds() - tc);
                    ms->have_ttft = true;
                    r.prefix_len[0] = BENCH_TTFT_PROMPT; /* those were the depth stream's first tokens */
                }
            }
            foot->kv_bytes_per_position = ts_context_kv_bytes_per_token(r.ctx);
            for (int di = 0; rc == 0 && di < o->depth.n; di++) {
                for (int pass = 0; rc == 0 && pass < 2; pass++) {
                    const int_list *l = pass == 0 ? &o->prompt : &o->gen;
                    /* -np applies to generation; a prompt test is one sequence */
                    const int n_par_values = pass == 0 ? 1 : o->parallel.n;
                    for (int k = 0; rc == 0 && k < l->n; k++) {
                        if (l->v[k] == 0) continue;
                        for (int pi = 0; rc == 0 && pi < n_par_values; pi++) {
                            bench_test tv[BENCH_MAX_WALKS];
                            for (int v = 0; v < nv; v++)
                                tv[v] = (bench_test){.ms = ms, .n_threads = o->threads.v[ti], .n_batch = o->n_batch,
                                        .n_prompt = pass == 0 ? l->v[k] : 0, .n_gen = pass == 1 ? l->v[k] : 0,
                                        .n_depth = o->depth.v[di], .n_parallel = pass == 0 ? 1 : o->parallel.v[pi],
                                        .cache = o->cache[ci], .walk = o->n_walks > 0 ? o->walks[v] : NULL,
                                        .samples_ns = samples + (size_t)v * (size_t)o->reps, .probe_gbs = probes,
                                        .run_probe = run_probe + (size_t)v * (size_t)o->reps,
                                        .kv_bytes_per_position = ts_context_kv_bytes_per_token(r.ctx),
                                        .bw = bw[ti], .peak = peak[ti]};
                            if (run_test(out, &r, tv, nv, &bw[ti], err) != 0) {
                                fprintf(stderr, "tiefsee: bench: %s\n", err);
                                rc = -1;
                            }
                        }
                    }
                }
            }
            ts_context_free(r.ctx);
            r.ctx = NULL;
        }
    }
    free(samples);
    free(probes);
    free(run_probe);
    free(r.tokens);
    free(r.pos);
    free(r.seq);
    free(r.want);
    free(r.logits);
    ts_sampler_free(r.greedy);
    ts_model_free(m);
    return rc;
}

int bench_model_main(int argc, char **argv) {
    bench_opts o = {.n_batch = 512, .reps = 5, .probe_mb = 1024};
    int urc = parse_bench_args(argc, argv, &o);
    if (urc != 0) return urc;

    bench_output out = {.o = &o};
    ts_cpu_model_name(out.cpu, sizeof out.cpu);
    bool any_gen = false;
    for (int i = 0; i < o.gen.n; i++) any_gen |= o.gen.v[i] > 0;
    bandwidth bw[BENCH_MAX_VALUES];
    memset(bw, 0, sizeof bw);
    probe_helper helper = {0};
    if (any_gen) {
        ts_err err = {""};
        if (probe_helper_start(&helper, &err) == 0)
            out.probe = &helper;
        else
            fprintf(stderr, "tiefsee: bench: %s; roofline figures left out\n", err.msg);
    }
    /* Probes first, while nothing else runs; by default (--bandwidth around) each generation test
     * probes for itself instead. */
    for (int ti = 0; any_gen && o.bw_cached && ti < o.threads.n; ti++) bw[ti] = measure_bandwidth(&o, out.probe, o.threads.v[ti], out.cpu);
    /* Then the arithmetic peak (threads of its own, joined before it returns). */
    cpu_peak peak[BENCH_MAX_VALUES];
    memset(peak, 0, sizeof peak);
    for (int ti = 0; any_gen && ti < o.threads.n; ti++) peak[ti] = measure_peak(&o, o.threads.v[ti], out.cpu);

    if (o.json) out.records = json_array();
    bench_footer feet[BENCH_MAX_VALUES];
    memset(feet, 0, sizeof feet);
    int rc = 0, n_done = 0;
    for (int mi = 0; mi < o.n_models && rc == 0; mi++) {
        if (bench_one_model(&out, o.models[mi], bw, peak, &feet[mi]) != 0) rc = 1;
        n_done = mi + 1;
    }
    if (o.json) {
        /* Printed even after a failure: the records so far, still a valid array. */
        char *text = json_dumps(out.records, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
        if (text) {
            printf("%s\n", text);
            free(text);
        }
        json_decref(out.records);
        probe_helper_stop(&helper);
        return rc;
    }
    printf("\n");
    if (out.notes) printf("%s", out.notes);
    free(out.notes);
    for (int mi = 0; mi < n_done; mi++) {
        const bench_footer *f = &feet[mi];
        if (!f->ms.type_desc[0]) continue;
        printf("%s: load %.3f s, time to first token %.3f s, weights read per token %.1f MiB, KV %" PRIu64
               " bytes per cached position\n",
               f->ms.path, f->ms.load_s, f->ms.have_ttft ? f->ms.ttft_s : 0.0, (double)f->ms.active_bytes / 1048576.0,
               f->kv_bytes_per_position);
        if (f->ms.repacked && f->ms.repack_cache == TS_REPACK_CACHE_MAPPED)
            printf("%s: mapped %.2f GB of repacked weights from the --repack-cache file in %.3f s (included in the "
                   "load time)\n", f->ms.path, (double)f->ms.repack_bytes / 1e9, f->ms.repack_s);
        else if (f->ms.repacked)
            printf("%s: repacked %.2f GB of weights at load%s in %.3f s (included in the load time)\n", f->ms.path,
                   (double)f->ms.repack_bytes / 1e9,
                   f->ms.repack_cache == TS_REPACK_CACHE_WRITTEN ? " into a new --repack-cache file" : "",
                   f->ms.repack_s);
    }
    if (any_gen && !o.bw_cached) printf("read bandwidth: probed right before and right after each generation test (lines above)\n");
    for (int ti = 0; any_gen && ti < o.threads.n; ti++) {
        if (bw[ti].gbs > 0)
            printf("read bandwidth, %d threads: %.2f GB/s (%s %s)\n", o.threads.v[ti], bw[ti].gbs,
                   bw[ti].cached ? "cached probe of" : "measured now,", bw[ti].measured_at);
    }
    for (int ti = 0; any_gen && ti < o.threads.n; ti++) {
        if (peak[ti].gflops > 0)
            printf("F32 FMA peak, %d threads: %.2f GFLOP/s (%s; %s %s)\n", o.threads.v[ti], peak[ti].gflops,
                   peak[ti].kernel, peak[ti].cached ? "cached probe of" : "measured now,", peak[ti].measured_at);
    }
    char rss[32];
    human_size(rss, sizeof rss, peak_rss_bytes());
    printf("peak RSS: %s; cpu: %s; kernels: %s%s; build: tiefsee %s\n", rss, out.cpu, ts_isa_name(o.isa),
           o.isa_name ? " (--isa)" : "", TIEFSEE_VERSION);
    probe_helper_stop(&helper);
    return rc;
}
