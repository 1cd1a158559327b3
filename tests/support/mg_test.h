/* SPDX-License-Identifier: MIT */
/*
 * mg_test.h: the in-house test macros. A test file defines test functions,
 * lists them in main() with MG_RUN, and returns mg_test_exit(). Failed checks
 * print both operands with file and line and keep going; the file's exit
 * status is non-zero when any check failed. Output is TAP-like.
 */
#ifndef MG_TEST_H
#define MG_TEST_H

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int mg_test_failed_checks;
static int mg_test_failed_tests;
static int mg_test_count;

#define MG_FAIL_(...)                                                         \
    do {                                                                      \
        fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);                     \
        fprintf(stderr, __VA_ARGS__);                                         \
        fputc('\n', stderr);                                                  \
        mg_test_failed_checks++;                                              \
    } while (0)

#define CHECK(cond)                                                           \
    do { if (!(cond)) MG_FAIL_("CHECK(%s) failed", #cond); } while (0)

#define CHECK_INT(a, b)                                                       \
    do {                                                                      \
        long long a_ = (long long)(a), b_ = (long long)(b);                   \
        if (a_ != b_) MG_FAIL_("%s == %s: %lld != %lld", #a, #b, a_, b_);     \
    } while (0)

#define CHECK_U64(a, b)                                                       \
    do {                                                                      \
        uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                      \
        if (a_ != b_)                                                         \
            MG_FAIL_("%s == %s: %" PRIu64 " != %" PRIu64, #a, #b, a_, b_);    \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                 \
    do {                                                                      \
        double a_ = (double)(a), b_ = (double)(b);                            \
        if (!(fabs(a_ - b_) <= (tol)))                                        \
            MG_FAIL_("%s ~= %s: %.9g vs %.9g (tol %g)", #a, #b, a_, b_,       \
                     (double)(tol));                                          \
    } while (0)

#define CHECK_STR(a, b)                                                       \
    do {                                                                      \
        const char *a_ = (a), *b_ = (b);                                      \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                \
            MG_FAIL_("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)", \
                     b_ ? b_ : "(null)");                                     \
    } while (0)

#define CHECK_CONTAINS(hay, needle)                                           \
    do {                                                                      \
        const char *h_ = (hay), *n_ = (needle);                               \
        if (!h_ || !strstr(h_, n_))                                           \
            MG_FAIL_("\"%s\" not found in:\n%s", n_, h_ ? h_ : "(null)");     \
    } while (0)

#define MG_RUN(fn)                                                            \
    do {                                                                      \
        int before_ = mg_test_failed_checks;                                  \
        mg_test_count++;                                                      \
        fn();                                                                 \
        if (mg_test_failed_checks != before_) {                               \
            mg_test_failed_tests++;                                           \
            printf("not ok %d - %s\n", mg_test_count, #fn);                   \
        } else {                                                              \
            printf("ok %d - %s\n", mg_test_count, #fn);                       \
        }                                                                     \
        fflush(stdout);                                                       \
    } while (0)

static inline int mg_test_exit(void)
{
    printf("1..%d\n%d passed, %d failed\n", mg_test_count,
           mg_test_count - mg_test_failed_tests, mg_test_failed_tests);
    return mg_test_failed_tests ? 1 : 0;
}

#endif /* MG_TEST_H */
