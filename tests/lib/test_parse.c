/* SPDX-License-Identifier: MIT */
/*
 * test_parse.c: mg_parse_frac() and mg_parse_size() on tables of good and
 * bad input, including the locale trap (a German LC_NUMERIC must not change
 * what "0.9" means) when such a locale is installed.
 */
#include "memguard.h"
#include "mg_test.h"

#include <locale.h>

static const struct {
    const char *in;
    double want;
} FRAC_GOOD[] = {
    {"0.9", 0.9},   {"90%", 0.9},   {"1", 1.0},       {"1.0", 1.0},
    {"100%", 1.0},  {"0.85", 0.85}, {"85%", 0.85},    {"87.5%", 0.875},
    {"0.001", 0.001}, {"0.5%", 0.005}, {"9e-1", 0.9}, {"90e0%", 0.9},
    {"00.92", 0.92},
};

static const struct {
    const char *in;
    int err;
} FRAC_BAD[] = {
    {"", MG_EPARSE},      {"%", MG_EPARSE},     {"abc", MG_EPARSE},
    {"0.9x", MG_EPARSE},  {" 0.9", MG_EPARSE},  {"0.9 ", MG_EPARSE},
    {"90 %", MG_EPARSE},  {"90%%", MG_EPARSE},  {".9", MG_EPARSE},
    {"1.", MG_EPARSE},    {"+0.9", MG_EPARSE},  {"0x1p-1", MG_EPARSE},
    {"nan", MG_EPARSE},   {"inf", MG_EPARSE},   {"1e", MG_EPARSE},
    {"0,9", MG_EPARSE},   {"-0.5", MG_EPARSE},
    {"0", MG_ERANGE},     {"0%", MG_ERANGE},    {"0.0", MG_ERANGE},
    {"1.01", MG_ERANGE},  {"101%", MG_ERANGE},  {"2", MG_ERANGE},
    {"1e999", MG_ERANGE}, {"1e-999", MG_ERANGE},
};

static void test_frac(void)
{
    for (size_t i = 0; i < sizeof FRAC_GOOD / sizeof FRAC_GOOD[0]; i++) {
        double v = -1.0;
        int rc = mg_parse_frac(FRAC_GOOD[i].in, &v);
        if (rc != 0) fprintf(stderr, "  input \"%s\"\n", FRAC_GOOD[i].in);
        CHECK_INT(rc, 0);
        CHECK_NEAR(v, FRAC_GOOD[i].want, 1e-15);
    }
    for (size_t i = 0; i < sizeof FRAC_BAD / sizeof FRAC_BAD[0]; i++) {
        double v = -1.0;
        int rc = mg_parse_frac(FRAC_BAD[i].in, &v);
        if (rc != FRAC_BAD[i].err)
            fprintf(stderr, "  input \"%s\"\n", FRAC_BAD[i].in);
        CHECK_INT(rc, FRAC_BAD[i].err);
        CHECK_NEAR(v, -1.0, 0.0); /* untouched on error */
    }
    double v;
    CHECK_INT(mg_parse_frac(NULL, &v), MG_EINVAL);
    CHECK_INT(mg_parse_frac("0.9", NULL), MG_EINVAL);
    /* Exactly the double a C literal gives. */
    CHECK_INT(mg_parse_frac("0.92", &v), 0);
    CHECK(v == 0.92);
}

#define K 1024ull
static const struct {
    const char *in;
    uint64_t want;
} SIZE_GOOD[] = {
    {"4096", 4096},
    {"1", 1},
    {"4096B", 4096},
    {"512K", 512 * K},
    {"512k", 512 * K},
    {"512KB", 512 * K},
    {"512KiB", 512 * K},
    {"512M", 512 * K * K},
    {"512MiB", 512 * K * K},
    {"512mib", 512 * K * K},
    {"512mb", 512 * K * K},
    {"8G", 8 * K * K * K},
    {"8GB", 8 * K * K * K},
    {"8g", 8 * K * K * K},
    {"1T", K * K * K * K},
    {"1TiB", K * K * K * K},
    {"2P", 2 * K * K * K * K * K},
    {"1.5G", 3 * K * K * K / 2},
    {"0.5K", 512},
    {"0.1K", 102}, /* whole bytes, rounded down */
    {"18446744073709551615", UINT64_MAX},
    {"16777215T", 16777215ull << 40},
};

static const struct {
    const char *in;
    int err;
} SIZE_BAD[] = {
    {"", MG_EPARSE},      {"-1", MG_EPARSE},    {"12Q", MG_EPARSE},
    {"G", MG_EPARSE},     {"GB", MG_EPARSE},    {" 8G", MG_EPARSE},
    {"8G ", MG_EPARSE},   {"8 G", MG_EPARSE},   {"+8G", MG_EPARSE},
    {".5G", MG_EPARSE},   {"1.G", MG_EPARSE},   {"8GG", MG_EPARSE},
    {"8GiBx", MG_EPARSE}, {"512iB", MG_EPARSE}, {"8Gi", MG_EPARSE},
    {"1.5", MG_EPARSE},   {"0x10", MG_EPARSE},  {"1e3", MG_EPARSE},
    {"8,5G", MG_EPARSE},  {"inf", MG_EPARSE},
    {"0", MG_ERANGE},     {"0G", MG_ERANGE},    {"0.0000001K", MG_ERANGE},
    {"18446744073709551616", MG_ERANGE},
    {"16777216T", MG_ERANGE}, {"16384P", MG_ERANGE},
    {"99999999999999999999999G", MG_ERANGE}, {"16777216.5T", MG_ERANGE},
};

static void test_size(void)
{
    for (size_t i = 0; i < sizeof SIZE_GOOD / sizeof SIZE_GOOD[0]; i++) {
        uint64_t v = 0;
        int rc = mg_parse_size(SIZE_GOOD[i].in, &v);
        if (rc != 0 || v != SIZE_GOOD[i].want)
            fprintf(stderr, "  input \"%s\"\n", SIZE_GOOD[i].in);
        CHECK_INT(rc, 0);
        CHECK_U64(v, SIZE_GOOD[i].want);
    }
    for (size_t i = 0; i < sizeof SIZE_BAD / sizeof SIZE_BAD[0]; i++) {
        uint64_t v = 77;
        int rc = mg_parse_size(SIZE_BAD[i].in, &v);
        if (rc != SIZE_BAD[i].err)
            fprintf(stderr, "  input \"%s\"\n", SIZE_BAD[i].in);
        CHECK_INT(rc, SIZE_BAD[i].err);
        CHECK_U64(v, 77);
    }
    uint64_t v;
    CHECK_INT(mg_parse_size(NULL, &v), MG_EINVAL);
    CHECK_INT(mg_parse_size("1G", NULL), MG_EINVAL);
}

/* Under a locale whose decimal point is a comma, "0.9" still parses and
 * "0,9" still does not. Skipped when no such locale is installed. */
static void test_uint(void)
{
    uint64_t v = 7;
    CHECK_INT(mg_parse_uint("16", 100, &v), 0);
    CHECK_U64(v, 16);
    CHECK_INT(mg_parse_uint("0", 100, &v), 0);
    CHECK_U64(v, 0);
    CHECK_INT(mg_parse_uint("18446744073709551615", UINT64_MAX, &v), 0);
    CHECK_U64(v, UINT64_MAX);
    CHECK_INT(mg_parse_uint("18446744073709551616", UINT64_MAX, &v), MG_ERANGE);
    CHECK_INT(mg_parse_uint("101", 100, &v), MG_ERANGE);
    const char *bad[] = {"", " 16", "16 ", "+16", "-1", "-0", "0x10", "1e3", "1.0", "16k",
                         "inf", "nan", "\t1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = 7;
        if (mg_parse_uint(bad[i], UINT64_MAX, &v) != MG_EPARSE) MG_FAIL_("'%s' accepted", bad[i]);
        CHECK_U64(v, 7); /* untouched on failure */
    }
    CHECK_INT(mg_parse_uint(NULL, 1, &v), MG_EINVAL);
    CHECK_INT(mg_parse_uint("1", 1, NULL), MG_EINVAL);
}

static void test_duration(void)
{
    static const struct { const char *s; uint64_t ms; } ok[] = {
        {"60", 60000}, {"1.5", 1500}, {"1.5s", 1500}, {"500ms", 500}, {"2m", 120000},
        {"1h", 3600000}, {"0", 0}, {"0.001", 1},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t v = 0;
        CHECK_INT(mg_parse_duration_ms(ok[i].s, UINT64_MAX, &v), 0);
        CHECK_U64(v, ok[i].ms);
    }
    const char *bad[] = {"", " 5", "5 ", "+5", "-0", "0x10", "1e3", "inf", "nan", "1.", ".5",
                         "5sec", "5 s", "5d", "s"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 7;
        if (mg_parse_duration_ms(bad[i], UINT64_MAX, &v) != MG_EPARSE)
            MG_FAIL_("'%s' accepted", bad[i]);
        CHECK_U64(v, 7);
    }
    uint64_t v;
    CHECK_INT(mg_parse_duration_ms("8d", 1000, &v), MG_EPARSE);
    CHECK_INT(mg_parse_duration_ms("2", 1000, &v), MG_ERANGE);
    CHECK_INT(mg_parse_duration_ms("1", 1000, &v), 0);
    /* Near 2^64 the double cannot say "at most max": refused, not UB. */
    CHECK_INT(mg_parse_duration_ms("18446744073709552", UINT64_MAX, &v), MG_ERANGE);
    CHECK_INT(mg_parse_duration_ms("99999999999999999999h", UINT64_MAX, &v), MG_ERANGE);
    /* Above 2^53 a double cannot tell max from max + 1: the result is
     * compared as an integer (fuzz/crashes/fuzz_parse: 9223372036854775 s
     * became 2^63 ms, one above INT64_MAX, and passed). */
    v = 0;
    int rc = mg_parse_duration_ms("9223372036854775", INT64_MAX, &v);
    CHECK(rc == MG_ERANGE || (rc == 0 && v <= INT64_MAX));
    CHECK_INT(mg_parse_duration_ms("1152921504606846976ms", 1ull << 60, &v), 0);
    CHECK_U64(v, 1ull << 60);
    CHECK_INT(mg_parse_duration_ms("1152921504606846976ms", (1ull << 60) - 1, &v), MG_ERANGE);
}

static void test_locale_independent(void)
{
    /* glibc's names, then the C runtime's on Windows. */
    const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8",
                           "fr_FR.utf8", "German_Germany.1252"};
    const char *got = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !got; i++)
        got = setlocale(LC_NUMERIC, names[i]);
    if (!got) {
        printf("# no comma-decimal locale installed: locale check skipped\n");
        return;
    }
    CHECK(strcmp(localeconv()->decimal_point, ",") == 0); /* the checks below mean something */
    double v;
    CHECK_INT(mg_parse_frac("0.9", &v), 0);
    CHECK(v == 0.9);
    CHECK_INT(mg_parse_frac("0,9", &v), MG_EPARSE);
    uint64_t b;
    CHECK_INT(mg_parse_size("1.5G", &b), 0);
    CHECK_U64(b, 3ull << 29);
    setlocale(LC_NUMERIC, "C");
}

int main(void)
{
    MG_RUN(test_frac);
    MG_RUN(test_size);
    MG_RUN(test_uint);
    MG_RUN(test_duration);
    MG_RUN(test_locale_independent);
    return mg_test_exit();
}
