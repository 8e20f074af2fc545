/* `tiefsee info`, `tiefsee synth` and the weight layout step the model commands share. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "tiefsee.h"

int cli_repack_model(ts_model *m, int n_threads, const char *who) {
    char err[TS_ERR_LEN] = "";
    ts_repack_stats st;
    if (ts_model_repack(m, n_threads, &st, err) != 0) {
        fprintf(stderr, "%s: %s\n", who, err);
        return 1;
    }
    fprintf(stderr, "%s: repacked %d weight matrices (%.2f GB) in %.2f s\n", who, st.matrices, (double)st.bytes / 1e9,
            st.seconds);
    return 0;
}

bool cli_repack_by_default(uint64_t repack_bytes, uint64_t physical_bytes) {
    return repack_bytes > 0 && physical_bytes > 0 && repack_bytes <= physical_bytes / 10 * 7;
}

static uint64_t physical_memory_bytes(void) {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) return 0;
    return (uint64_t)pages * (uint64_t)page;
}

bool cli_repack_cache_dir(char *out, size_t cap) {
    const char *env = getenv("TIEFSEE_REPACK_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int w;
    if (env && env[0])
        w = snprintf(out, cap, "%s", env);
    else if (xdg && xdg[0] == '/')
        w = snprintf(out, cap, "%s/tiefsee/repacked", xdg);
    else if (home && home[0])
        w = snprintf(out, cap, "%s/.cache/tiefsee/repacked", home);
    else
        return false;
    return w > 0 && (size_t)w < cap;
}

/* Maps an earlier run's repacked weights from the cache or, with write (--repack-cache), repacks
 * into a new cache file when there is none. Returns 0 when the model now uses the cache, 1 when it
 * could not (the model unchanged; said on stderr when the cache was asked for or is stale). */
static int prepare_from_cache(ts_model *m, int n_threads, const char *who, bool write, bool report,
                              ts_repack_stats *stats) {
    char dir[1024], err[TS_ERR_LEN] = "";
    if (!cli_repack_cache_dir(dir, sizeof dir)) {
        if (write) fprintf(stderr, "%s: --repack-cache: no folder for the cache (set TIEFSEE_REPACK_CACHE_DIR or HOME)\n", who);
        return 1;
    }
    ts_repack_stats st;
    if (ts_model_repack_cached(m, n_threads, dir, write, &st, err) != 0) {
        if (write)
            fprintf(stderr, "%s: repacked weights not cached: %s\n", who, err);
        else if (st.cache_note[0])
            fprintf(stderr, "%s: not using the %s (--repack-cache rewrites it)\n", who, err);
        return 1;
    }
    if (stats) *stats = st;
    if (st.cache_note[0]) fprintf(stderr, "%s: replaced a stale cache file: %s\n", who, st.cache_note);
    if (st.cache == TS_REPACK_CACHE_MAPPED && (write || report))
        fprintf(stderr, "%s: mapped %d repacked weight matrices (%.2f GB) from %s in %.2f s\n", who, st.matrices,
                (double)st.bytes / 1e9, st.cache_path, st.seconds);
    else if (st.cache == TS_REPACK_CACHE_WRITTEN)
        fprintf(stderr,
                "%s: repacked %d weight matrices (%.2f GB) into %s in %.2f s; later loads map it ('tiefsee "
                "cache' lists and prunes these files)\n",
                who, st.matrices, (double)st.bytes / 1e9, st.cache_path, st.seconds);
    return 0;
}

int cli_prepare_weights(ts_model *m, const cli_weight_opts *o, int n_threads, const char *who, bool report,
                        ts_repack_stats *stats) {
    if (stats) memset(stats, 0, sizeof *stats);
    if (o->repack && o->no_repack) {
        fprintf(stderr, "%s: --repack and --no-repack contradict each other\n", who);
        return EXIT_USAGE;
    }
    if (o->repack_cache && o->no_repack) {
        fprintf(stderr, "%s: --repack-cache and --no-repack contradict each other\n", who);
        return EXIT_USAGE;
    }
    if (o->no_repack) return 0;
    /* The cache is mapped file pages the kernel can drop and read again, like the model file's own:
     * the 70 % rule for memory the model owns does not apply to it. Without --repack-cache an
     * existing cache file is still used (the default and a cache give the same bytes); only
     * --repack insists on a copy in memory. */
    const bool have_work = ts_model_repack_bytes(m) > 0;
    if (o->repack_cache && have_work && prepare_from_cache(m, n_threads, who, true, report, stats) == 0) return 0;
    if (!o->repack_cache && !o->repack && have_work && prepare_from_cache(m, n_threads, who, false, report, stats) == 0)
        return 0;
    if (!o->repack) {
        const uint64_t bytes = ts_model_repack_bytes(m), mem = physical_memory_bytes();
        if (bytes == 0) return 0;
        if (!cli_repack_by_default(bytes, mem)) {
            fprintf(stderr,
                    "%s: weights kept in the file layout: repacking them for faster decoding would take %.2f GB, "
                    "more than 70 %% of this machine's %.2f GB (--repack does it anyway; --repack-cache keeps them "
                    "in a file instead)\n",
                    who, (double)bytes / 1e9, (double)mem / 1e9);
            return 0;
        }
    }
    char err[TS_ERR_LEN] = "";
    ts_repack_stats st;
    if (ts_model_repack(m, n_threads, &st, err) != 0) {
        fprintf(stderr, "%s: %s\n", who, err);
        return 1;
    }
    if (stats) *stats = st;
    if (o->repack || report || st.seconds >= 1.0)
        fprintf(stderr, "%s: repacked %d weight matrices (%.2f GB) for faster decoding in %.2f s%s\n", who, st.matrices,
                (double)st.bytes / 1e9, st.seconds,
                o->repack || o->repack_cache ? "" : " (--no-repack skips it; --repack-cache keeps them for later loads)");
    return 0;
}

static void write_line(void *user, const char *line) { fprintf((FILE *)user, "%s\n", line); }

int cmd_info(int argc, char **argv) {
    const char *model_path = NULL;
    const opt_def opts[] = {
        {"-m", "--model", OPT_STR, &model_path, "FILE", "model file (or give it as the argument)", 0, 0, NULL},
    };
    const char *positional[1];
    arg_parser p = {"info", opts, 1, positional, 0, 1, false};
    if (args_parse(&p, argc, argv) != 0)
        return EXIT_USAGE;
    if (p.help) {
        printf("usage: tiefsee info MODEL.gguf\n\nPrints the model's hyperparameters and tensor types.\n\noptions:\n");
        args_print_options(&p, stdout);
        return 0;
    }
    if (p.n_positional && model_path)
        return usage_error("info", "give the model once (either MODEL or -m MODEL)");
    if (p.n_positional)
        model_path = positional[0];
    if (!model_path)
        return usage_error("info", "no model given");

    char err[TS_ERR_LEN] = "";
    ts_model *m = NULL;
    if (ts_model_load(model_path, &m, err) != 0) {
        fprintf(stderr, "tiefsee: %s\n", err);
        return 1;
    }
    ts_model_describe(m, write_line, stdout);
    ts_model_free(m);
    return fflush(stdout) == 0 ? 0 : 1;
}

int cmd_synth(int argc, char **argv) {
    const char *out_path = NULL, *type = "f16", *hf_config = NULL;
    uint64_t seed = 0;
    bool force = false, list = false;
    int n_threads = 0;
    const opt_def opts[] = {
        {"-o", "--output", OPT_STR, &out_path, "FILE", "where to write the GGUF (required)", 0, 0, NULL},
        {NULL, "--type", OPT_STR, &type, "TYPE", "weight type or mix: f32, f16, q8_0, q4_K, q4_K_M ... (default f16)", 0, 0,
         NULL},
        {NULL, "--seed", OPT_SEED, &seed, "S", "random seed of the weights (default 0)", 0, 0, NULL},
        {NULL, "--hf-config", OPT_STR, &hf_config, "FILE", "shape from a Hugging Face config.json instead of a preset", 0,
         0, NULL},
        {NULL, "--force", OPT_FLAG, &force, NULL, "replace FILE if it exists", 0, 0, NULL},
        {"-t", "--threads", OPT_INT, &n_threads, "N", "threads (default: all cores)", 0, 1024, NULL},
        {NULL, "--list", OPT_FLAG, &list, NULL, "list the presets", 0, 0, NULL},
    };
    const char *positional[1];
    arg_parser p = {"synth", opts, (int)(sizeof opts / sizeof opts[0]), positional, 0, 1, false};
    if (args_parse(&p, argc, argv) != 0)
        return EXIT_USAGE;
    if (p.help) {
        printf("usage: tiefsee synth PRESET -o OUT.gguf [options]\n"
               "       tiefsee synth --hf-config config.json -o OUT.gguf [options]\n"
               "       tiefsee synth --list\n\n"
               "Writes a model with random weights: right shapes and file format, meaningless output.\n"
               "For tests and for trying the program without a download.\n\noptions:\n");
        args_print_options(&p, stdout);
        return 0;
    }
    if (list) {
        for (const char *const *name = ts_synth_presets(); *name; name++) {
            const char *desc = ts_synth_preset_desc(*name);
            printf("%-28s %s\n", *name, desc ? desc : "");
        }
        return 0;
    }
    const char *preset = p.n_positional ? positional[0] : NULL;
    if (!preset && !hf_config)
        return usage_error("synth", "no preset given (see 'tiefsee synth --list')");
    if (!out_path)
        return usage_error("synth", "no output file given (-o OUT.gguf)");

    ts_synth_params sp = {.preset = preset,
                          .hf_config = hf_config,
                          .type = type,
                          .seed = seed,
                          .out_path = out_path,
                          .overwrite = force,
                          .n_threads = n_threads};
    char err[TS_ERR_LEN] = "";
    double t0 = now_seconds();
    if (ts_synth(&sp, err) != 0) {
        fprintf(stderr, "tiefsee: %s\n", err);
        return 1;
    }
    fprintf(stderr, "tiefsee: wrote %s (%s, random weights) in %.1f s\n", out_path, preset ? preset : hf_config,
            now_seconds() - t0);
    return 0;
}
