/* The check macro the C tests share: a failed CHECK prints where and why and counts, so a test runs
 * all its checks and exits nonzero at the end (`return failures ? 1 : 0;`). Each test is one
 * translation unit, so the counter is that test's own. */
#ifndef TS_TESTS_CHECK_H
#define TS_TESTS_CHECK_H

#include <stdio.h>

static int failures;
#define CHECK(cond, ...)                                                                                    \
    do {                                                                                                    \
        if (!(cond)) {                                                                                      \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                     \
            printf(__VA_ARGS__);                                                                            \
            printf("\n");                                                                                   \
            failures++;                                                                                     \
        }                                                                                                   \
    } while (0)

/* A test's exit status after its checks: prints the failure count, or "all <what> tests passed". */
static inline int check_summary(const char *what) {
    if (failures) {
        printf("%d failure(s)\n", failures);
        return 1;
    }
    printf("all %s tests passed\n", what);
    return 0;
}

/* UNDER_ASAN: defined in the AddressSanitizer build (gcc's macro, clang's __has_feature), where
 * some tests skip what ASan cannot do (address-space limits) or trim what it makes slow. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

#endif
