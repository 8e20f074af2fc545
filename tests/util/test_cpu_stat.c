/* The /proc/stat reader behind `tiefsee bench`'s steal time: real lines of several kernels, the
 * forms it must refuse with a message, and the fraction between two readings. */
#include <string.h>

#include "check.h"
#include "util/cpu_stat.h"

static int parse(const char *s, ts_cpu_times *t, ts_err *err) { return ts_cpu_times_parse(s, strlen(s), t, err); }

static void test_real_lines(void) {
    ts_cpu_times t;
    ts_err err = {{0}};
    /* Linux 6.x: ten counters, guest and guest_nice not summed (already in user and nice). */
    CHECK(parse("cpu  79237 0 25260 809190 2125 0 172 7114 0 0\ncpu0 39000 0 12000 400000 1000 0 90 3500 0 0\n", &t,
                &err) == 0, "a Linux 6 line: %s", err.msg);
    CHECK(t.total == 79237u + 25260 + 809190 + 2125 + 172 + 7114 && t.steal == 7114, "total %llu steal %llu",
          (unsigned long long)t.total, (unsigned long long)t.steal);
    CHECK(parse("cpu  10 20 30 40 50 60 70 80 1000 2000\n", &t, &err) == 0 && t.total == 360 && t.steal == 80,
          "guest fields summed in: total %llu", (unsigned long long)t.total);
    /* exactly eight fields (2.6.11 until guest was added), the text ending right after the last */
    CHECK(parse("cpu 1 2 3 4 5 6 7 8", &t, &err) == 0 && t.total == 36 && t.steal == 8, "eight fields: %s", err.msg);
    /* the largest counters that still add up */
    CHECK(parse("cpu 0 0 0 0 0 0 0 18446744073709551615\n", &t, &err) == 0 && t.steal == UINT64_MAX, "UINT64_MAX: %s",
          err.msg);
}

static void test_refused(void) {
    static const char *const bad[] = {
        "",                                          /* empty */
        "cpu0 1 2 3 4 5 6 7 8\n",                    /* a per-CPU line first */
        "intr 1 2 3\n",                              /* another line first */
        "cpu  1 2 3 4 5 6 7\n",                      /* no steal field (kernels before 2.6.11) */
        "cpu  1 2 3 4 5 6 7",                        /* the same, cut at the end of the text */
        "cpu  1 2 3 x 5 6 7 8\n",                    /* not a number */
        "cpu  1 2 3 4 5 6 7 -8\n",                   /* negative */
        "cpu  1 2 3 4 5 6 7 8x\n",                   /* junk after a number */
        "cpu  1 2 3 4 5 6 7 18446744073709551616\n", /* one past UINT64_MAX */
        "cpu  1 0 0 0 0 0 0 18446744073709551615\n", /* the sum overflows */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ts_cpu_times t = {1, 1};
        ts_err err = {{0}};
        CHECK(parse(bad[i], &t, &err) == -1, "accepted \"%s\"", bad[i]);
        CHECK(strncmp(err.msg, "/proc/stat: ", 12) == 0 && strchr(err.msg, '\n') == NULL, "message \"%s\" for \"%s\"",
              err.msg, bad[i]);
    }
    /* the length bounds the parse: the same line cut before its steal field is refused */
    ts_cpu_times t;
    ts_err err = {{0}};
    const char *line = "cpu 1 2 3 4 5 6 7 8\n";
    CHECK(ts_cpu_times_parse(line, strlen(line) - 3, &t, &err) == -1 && strstr(err.msg, "steal") != NULL,
          "a line cut before steal: \"%s\"", err.msg);
}

static void test_fraction(void) {
    const ts_cpu_times a = {1000, 10}, b = {2000, 60}, back = {900, 10}, steal_back = {2000, 5};
    CHECK(ts_cpu_steal_fraction(&a, &b) == 0.05, "50 of 1000 ticks: %g", ts_cpu_steal_fraction(&a, &b));
    CHECK(ts_cpu_steal_fraction(&a, &a) == -1.0, "no time passed: no figure");
    CHECK(ts_cpu_steal_fraction(&a, &back) == -1.0, "a total that went back: no figure");
    CHECK(ts_cpu_steal_fraction(&a, &steal_back) == -1.0, "a steal counter that went back: no figure");
    ts_cpu_times now;
    if (ts_cpu_times_now(&now)) CHECK(now.total >= now.steal, "this machine's counters now");
}

int main(void) {
    test_real_lines();
    test_refused();
    test_fraction();
    if (!failures) printf("test_cpu_stat: ok\n");
    return failures ? 1 : 0;
}
