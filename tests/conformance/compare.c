// Comparator for the differential conformance test (tests/conformance/test_conformance.sh).
//
//   compare logp   REF_LOGP.f32 OUR_LOGITS.f32 N_VOCAB MAX_DLOGP MAX_MEAN_KL [MIN_ARGMAX [logp|logits]]
//       REF holds llama.cpp's log-probabilities, OURS tiefsee's raw logits (both n x N_VOCAB float32).
//       Prints max |d log p| over every position and vocabulary entry, mean and max per-position
//       KL(llama.cpp || tiefsee) and the argmax agreement; exits 1 when a bound is exceeded.
//       MIN_ARGMAX (default 0): the least fraction of positions whose argmax must agree; a position
//       where the reference's best two entries lie within ARGMAX_TIE_LOGP counts as agreeing (a tie
//       two engines may break either way). The last argument "logits" says REF holds raw logits (the
//       float64 reference dsref.py writes those) instead of log-probabilities.
//   compare logits A.f32 B.f32 N_VOCAB N_ROWS MAX_REL
//       Compares the first N_ROWS rows of two logit files (batch vs --step): max |a-b| divided by the
//       logit scale (max |a| over those rows); exits 1 when above MAX_REL.
//   compare greedy OUR_LOGITS.f32 N_VOCAB FIRST_ROW TOKENS_CSV TIE_TOL
//       Checks that argmax of row FIRST_ROW+k equals the k-th expected token. A mismatch counts as a
//       tie (not a failure) when our logit for the expected token is within TIE_TOL of our maximum:
//       two engines cannot be expected to break near-exact ties the same way.
// Exit status: 0 pass, 1 bound exceeded, 2 usage or input error.
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ln of the smallest normal float32: below it llama.cpp's float32 probability is subnormal or zero
// and its logarithm no longer has float precision, so those entries are left out of max |d log p|
// (they still enter the KL sum, where their weight is < 1e-38).
#define SMALLEST_NORMAL_LOG (-87.3)

// Reference log-probability gap below which an argmax disagreement counts as a tie.
#define ARGMAX_TIE_LOGP 1e-3

typedef struct {
    float *values;
    size_t count;
} FloatFile;

static int read_float_file(const char *path, FloatFile *out) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "compare: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (fseek(f, 0, SEEK_END) != 0) goto io_error;
    long size = ftell(f);
    if (size < 0 || size % 4 != 0 || fseek(f, 0, SEEK_SET) != 0) goto io_error;
    out->count = (size_t)size / 4;
    out->values = malloc(out->count ? out->count * sizeof(float) : 1);
    if (!out->values) goto io_error;
    if (fread(out->values, sizeof(float), out->count, f) != out->count) {
        free(out->values);
        goto io_error;
    }
    fclose(f);
    return 0;
io_error:
    fprintf(stderr, "compare: %s: unreadable or not a whole number of float32 values\n", path);
    fclose(f);
    return -1;
}

static int parse_size(const char *text, size_t *out) {
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || value > SIZE_MAX / 8) return -1;
    *out = (size_t)value;
    return 0;
}

static int parse_double(const char *text, double *out) {
    char *end = NULL;
    errno = 0;
    *out = strtod(text, &end);
    return (errno != 0 || end == text || *end != '\0') ? -1 : 0;
}

static int rows_of(const FloatFile *file, size_t n_vocab, const char *what, size_t *rows) {
    if (n_vocab == 0 || file->count % n_vocab != 0 || file->count == 0) {
        fprintf(stderr, "compare: %s holds %zu floats, not a positive multiple of n_vocab=%zu\n", what,
                file->count, n_vocab);
        return -1;
    }
    *rows = file->count / n_vocab;
    return 0;
}

// Natural-log softmax of one row of logits, in double so our own rounding stays out of the measurement.
static int log_softmax_row(const float *logits, size_t n, double *out) {
    double max = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(logits[i])) return -1;
        if (logits[i] > max) max = logits[i];
    }
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += exp((double)logits[i] - max);
    double log_sum = log(sum) + max;
    for (size_t i = 0; i < n; i++) out[i] = (double)logits[i] - log_sum;
    return 0;
}

static int compare_logp(int argc, char **argv) {
    size_t n_vocab;
    double max_dlogp_bound, max_mean_kl_bound, min_argmax = 0.0;
    bool ref_is_logits = argc > 6 && strcmp(argv[6], "logits") == 0;
    if (parse_size(argv[2], &n_vocab) || parse_double(argv[3], &max_dlogp_bound) ||
        parse_double(argv[4], &max_mean_kl_bound) || (argc > 5 && parse_double(argv[5], &min_argmax)) ||
        (argc > 6 && !ref_is_logits && strcmp(argv[6], "logp") != 0)) {
        fprintf(stderr, "compare logp: bad argument\n");
        return 2;
    }
    FloatFile ref = {0}, ours = {0};
    double *our_logp = NULL, *ref_logits_logp = NULL;
    int status = 2;
    size_t rows_ref, rows_ours;
    if (read_float_file(argv[0], &ref) || read_float_file(argv[1], &ours)) goto done;
    if (rows_of(&ref, n_vocab, argv[0], &rows_ref) || rows_of(&ours, n_vocab, argv[1], &rows_ours)) goto done;
    if (rows_ref != rows_ours) {
        fprintf(stderr, "compare logp: %zu reference rows but %zu of ours\n", rows_ref, rows_ours);
        goto done;
    }
    our_logp = malloc(n_vocab * sizeof(double));
    ref_logits_logp = malloc(n_vocab * sizeof(double));
    float *ref_row_buffer = malloc(n_vocab * sizeof(float));
    if (!our_logp || !ref_logits_logp || !ref_row_buffer) {
        free(ref_row_buffer);
        goto done;
    }
    double max_dlogp = 0.0, kl_sum = 0.0, max_kl = 0.0;
    size_t worst_row = 0, worst_token = 0, skipped = 0, argmax_agree = 0, argmax_ties = 0;
    for (size_t row = 0; row < rows_ref; row++) {
        if (log_softmax_row(ours.values + row * n_vocab, n_vocab, our_logp)) {
            fprintf(stderr, "compare logp: non-finite logit in our row %zu\n", row);
            status = 1;
            free(ref_row_buffer);
            goto done;
        }
        const float *ref_row = ref.values + row * n_vocab;
        if (ref_is_logits) {
            if (log_softmax_row(ref_row, n_vocab, ref_logits_logp)) {
                fprintf(stderr, "compare logp: non-finite reference logit in row %zu\n", row);
                free(ref_row_buffer);
                goto done;
            }
            for (size_t t = 0; t < n_vocab; t++) ref_row_buffer[t] = (float)ref_logits_logp[t];
            ref_row = ref_row_buffer;
        }
        // Argmax agreement: our best token against the reference's, a near-tie in the reference
        // forgiven (either engine may break it either way).
        size_t ref_best = 0, our_best = 0;
        for (size_t t = 1; t < n_vocab; t++) {
            if (ref_row[t] > ref_row[ref_best]) ref_best = t;
            if (our_logp[t] > our_logp[our_best]) our_best = t;
        }
        if (ref_best == our_best) {
            argmax_agree++;
        } else if ((double)ref_row[ref_best] - (double)ref_row[our_best] <= ARGMAX_TIE_LOGP) {
            argmax_agree++;
            argmax_ties++;
        }
        // llama.cpp normalised its probabilities with a float32 sum; renormalising in double removes
        // that rounding (up to ~n_vocab ulp) so it is not charged to tiefsee and KL stays >= 0.
        double ref_sum = 0.0;
        for (size_t t = 0; t < n_vocab; t++) {
            if (isnan(ref_row[t]) || ref_row[t] > 1e-3f) {
                fprintf(stderr, "compare logp: reference row %zu token %zu is not a log-probability\n", row, t);
                goto done;
            }
            ref_sum += exp((double)ref_row[t]);
        }
        double ref_log_norm = log(ref_sum);
        double kl = 0.0;
        for (size_t t = 0; t < n_vocab; t++) {
            double ref_logp = (double)ref_row[t] - ref_log_norm;
            if (ref_logp < SMALLEST_NORMAL_LOG) {
                skipped++;
                continue;  // contributes exp(ref_logp) < 1e-38 to the KL sum
            }
            double diff = fabs(ref_logp - our_logp[t]);
            if (diff > max_dlogp) {
                max_dlogp = diff;
                worst_row = row;
                worst_token = t;
            }
            kl += exp(ref_logp) * (ref_logp - our_logp[t]);
        }
        kl_sum += kl;
        if (kl > max_kl) max_kl = kl;
    }
    free(ref_row_buffer);
    double mean_kl = kl_sum / (double)rows_ref;
    double argmax_fraction = (double)argmax_agree / (double)rows_ref;
    int fail = !(max_dlogp <= max_dlogp_bound) || !(mean_kl <= max_mean_kl_bound) || !(argmax_fraction >= min_argmax);
    printf("max_dlogp=%.3e mean_kl=%.3e max_kl=%.3e rows=%zu worst_row=%zu worst_token=%zu skipped=%zu "
           "argmax=%zu/%zu argmax_ties=%zu %s\n",
           max_dlogp, mean_kl, max_kl, rows_ref, worst_row, worst_token, skipped, argmax_agree, rows_ref, argmax_ties,
           fail ? "FAIL" : "ok");
    status = fail;
done:
    free(our_logp);
    free(ref_logits_logp);
    free(ref.values);
    free(ours.values);
    return status;
}

static int compare_logits(char **argv) {
    size_t n_vocab, n_rows;
    double max_rel_bound;
    if (parse_size(argv[2], &n_vocab) || parse_size(argv[3], &n_rows) || parse_double(argv[4], &max_rel_bound)) {
        fprintf(stderr, "compare logits: bad numeric argument\n");
        return 2;
    }
    FloatFile a = {0}, b = {0};
    int status = 2;
    size_t rows_a, rows_b;
    if (read_float_file(argv[0], &a) || read_float_file(argv[1], &b)) goto done;
    if (rows_of(&a, n_vocab, argv[0], &rows_a) || rows_of(&b, n_vocab, argv[1], &rows_b)) goto done;
    if (n_rows == 0 || n_rows > rows_a || n_rows > rows_b) {
        fprintf(stderr, "compare logits: asked for %zu rows, files have %zu and %zu\n", n_rows, rows_a, rows_b);
        goto done;
    }
    double max_diff = 0.0, scale = 0.0;
    size_t worst = 0;
    for (size_t i = 0; i < n_rows * n_vocab; i++) {
        if (!isfinite(a.values[i]) || !isfinite(b.values[i])) {
            fprintf(stderr, "compare logits: non-finite value at row %zu\n", i / n_vocab);
            status = 1;
            goto done;
        }
        double diff = fabs((double)a.values[i] - (double)b.values[i]);
        if (diff > max_diff) {
            max_diff = diff;
            worst = i;
        }
        if (fabs((double)a.values[i]) > scale) scale = fabs((double)a.values[i]);
    }
    double rel = scale > 0.0 ? max_diff / scale : max_diff;
    int fail = !(rel <= max_rel_bound);
    printf("max_abs=%.3e scale=%.3e rel=%.3e rows=%zu worst_row=%zu %s\n", max_diff, scale, rel, n_rows,
           worst / n_vocab, fail ? "FAIL" : "ok");
    status = fail;
done:
    free(a.values);
    free(b.values);
    return status;
}

static int compare_greedy(char **argv) {
    size_t n_vocab, first_row;
    double tie_tol;
    if (parse_size(argv[1], &n_vocab) || parse_size(argv[2], &first_row) || parse_double(argv[4], &tie_tol)) {
        fprintf(stderr, "compare greedy: bad numeric argument\n");
        return 2;
    }
    FloatFile ours = {0};
    int status = 2;
    size_t rows;
    if (read_float_file(argv[0], &ours) || rows_of(&ours, n_vocab, argv[0], &rows)) goto done;
    size_t matched = 0, ties = 0, checked = 0;
    long first_mismatch = -1;
    const char *cursor = argv[3];
    while (*cursor) {
        char *end = NULL;
        errno = 0;
        unsigned long expected = strtoul(cursor, &end, 10);
        if (errno != 0 || end == cursor || expected >= n_vocab || (*end != ',' && *end != '\0')) {
            fprintf(stderr, "compare greedy: bad token list near '%s'\n", cursor);
            goto done;
        }
        cursor = *end == ',' ? end + 1 : end;
        size_t row = first_row + checked;
        if (row >= rows) {
            fprintf(stderr, "compare greedy: token %zu needs row %zu, file has %zu\n", checked, row, rows);
            goto done;
        }
        const float *logits = ours.values + row * n_vocab;
        size_t best = 0;
        for (size_t t = 1; t < n_vocab; t++)
            if (logits[t] > logits[best]) best = t;
        if (best == expected) {
            matched++;
        } else if ((double)logits[best] - (double)logits[expected] <= tie_tol) {
            ties++;
        } else if (first_mismatch < 0) {
            first_mismatch = (long)checked;
        }
        checked++;
    }
    int fail = checked == 0 || first_mismatch >= 0;
    printf("greedy matched=%zu ties=%zu of %zu first_mismatch=%ld %s\n", matched, ties, checked, first_mismatch,
           fail ? "FAIL" : "ok");
    status = fail;
done:
    free(ours.values);
    return status;
}

int main(int argc, char **argv) {
    if (argc >= 7 && argc <= 9 && strcmp(argv[1], "logp") == 0) return compare_logp(argc - 2, argv + 2);
    if (argc == 7 && strcmp(argv[1], "logits") == 0) return compare_logits(argv + 2);
    if (argc == 7 && strcmp(argv[1], "greedy") == 0) return compare_greedy(argv + 2);
    fprintf(stderr,
            "usage: compare logp REF_LOGP OUR_LOGITS N_VOCAB MAX_DLOGP MAX_MEAN_KL [MIN_ARGMAX [logp|logits]]\n"
            "       compare logits A B N_VOCAB N_ROWS MAX_REL\n"
            "       compare greedy OUR_LOGITS N_VOCAB FIRST_ROW TOKENS_CSV TIE_TOL\n");
    return 2;
}
