/* SPDX-License-Identifier: MIT */
/*
 * fuzz_parse.c: libFuzzer harness for libmemguard's text parsers: the
 * public number grammar (mg_parse_frac, mg_parse_size, mg_parse_uint,
 * mg_parse_duration_ms), the probe's small parsers (mg__parse_u64 and the
 * probe.h helpers that read cgroup counters, memory.stat and PIDs), and
 * the /proc/meminfo and /proc/pressure/memory readers, fed through a file
 * descriptor exactly as the probe reads them (mg__pread_single).
 *
 * Input: the first byte picks the target (its value modulo 8; for
 * mg_parse_uint and mg_parse_duration_ms, its value / 8 picks the maximum),
 * the rest is the text. Besides
 * "no crash, no UB", it checks what each parser promises: a fraction in
 * (0, 1], a size above 0, a value within the caller's maximum, a uint that
 * prints back as its digits, finite non-negative PSI figures.
 */
#include "fuzz_util.h"
#include "linux/probe.h"

#include <inttypes.h>
#include <math.h>

static mg__probe *probe; /* only the descriptors and the log are used */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A descriptor on a file of the private folder, unlinked at once. */
static int scratch_fd(const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", fz_tmpdir(), name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror("fuzz: open");
        abort();
    }
    unlink(path);
    return fd;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    probe = calloc(1, sizeof *probe);
    if (!probe) abort();
    probe->meminfo_fd = scratch_fd("meminfo");
    probe->psi_fd = scratch_fd("pressure");
    return 0;
}

/* The callers' maxima (cmd_run.c, common.c) and the edges of uint64_t,
 * picked by the selector byte's upper bits. */
static uint64_t max_pick;

static uint64_t pick_max(void)
{
    static const uint64_t maxima[] = {7u * 86400000u, 1000, 65535, UINT32_MAX,
                                      INT64_MAX, UINT64_MAX};
    return maxima[max_pick % (sizeof maxima / sizeof maxima[0])];
}

static void fuzz_frac(const char *s)
{
    double v = -1;
    if (mg_parse_frac(s, &v) == 0)
        FZ_CHECK(isfinite(v) && v > 0.0 && v <= 1.0, "'%s' -> %g", s, v);
}

static void fuzz_size(const char *s)
{
    uint64_t v = 0;
    if (mg_parse_size(s, &v) == 0) FZ_CHECK(v > 0, "'%s' -> 0", s);
}

static void fuzz_uint(const char *s)
{
    uint64_t v = 0, max = pick_max();
    if (mg_parse_uint(s, max, &v) != 0) return;
    FZ_CHECK(v <= max, "'%s' -> %" PRIu64 " above %" PRIu64, s, v, max);
    /* digits only: it prints back as itself, leading zeros aside */
    const char *digits = s;
    while (digits[0] == '0' && digits[1]) digits++;
    char back[32];
    snprintf(back, sizeof back, "%" PRIu64, v);
    FZ_CHECK(strcmp(back, digits) == 0, "'%s' -> %s", s, back);
}

static void fuzz_duration(const char *s)
{
    uint64_t v = 0, max = pick_max();
    if (mg_parse_duration_ms(s, max, &v) == 0)
        FZ_CHECK(v <= max, "'%s' -> %" PRIu64 " ms above %" PRIu64, s, v, max);
}

/* mg__parse_u64 and the inline helpers of probe.h. */
static void fuzz_small(const char *s)
{
    const char *p = s;
    uint64_t v;
    if (mg__parse_u64(&p, &v) == 0) FZ_CHECK(p > s && p[-1] >= '0' && p[-1] <= '9', "'%s'", s);
    (void)parse_single_u64(s, &v);
    int pid;
    if (parse_pid(s, &pid)) FZ_CHECK(pid > 0, "'%s' -> pid %d", s, pid);
    double d;
    p = s;
    if (parse_decimal(&p, &d)) FZ_CHECK(!isnan(d) && d >= 0, "'%s' -> %g", s, d);
    (void)is_all_digits(s);
}

static void fuzz_stat(const char *s)
{
    static const char *const keys[] = {"inactive_file", "total_inactive_file",
                                       "hierarchical_memory_limit", "file"};
    uint64_t v;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) (void)stat_lookup(s, keys[i], &v);
}

static void fuzz_meminfo(const uint8_t *data, size_t size)
{
    fz_refill_fd(probe->meminfo_fd, data, size);
    mg_snapshot snap;
    memset(&snap, 0, sizeof snap);
    if (mg__probe_meminfo(probe, &snap) == 0) {
        FZ_CHECK(snap.ram.meminfo_known, "success without a reading");
        FZ_CHECK(snap.ram.mem_total_bytes % 1024 == 0, "total not whole kB");
    }
}

static void fuzz_psi(const uint8_t *data, size_t size)
{
    fz_refill_fd(probe->psi_fd, data, size);
    mg_snapshot snap;
    memset(&snap, 0, sizeof snap);
    mg__probe_psi(probe, &snap);
    if (snap.psi.known)
        FZ_CHECK(snap.psi.some_avg10 >= 0 && snap.psi.full_avg10 >= 0 &&
                 !isnan(snap.psi.some_avg10) && !isnan(snap.psi.full_avg10),
                 "psi %g %g", snap.psi.some_avg10, snap.psi.full_avg10);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    unsigned target = data[0] % 8;
    max_pick = data[0] / 8;
    data++;
    size--;
    if (target == 6) {
        fuzz_meminfo(data, size);
        return 0;
    }
    if (target == 7) {
        fuzz_psi(data, size);
        return 0;
    }
    char *s = fz_strndup(data, size);
    switch (target) {
    case 0: fuzz_frac(s); break;
    case 1: fuzz_size(s); break;
    case 2: fuzz_uint(s); break;
    case 3: fuzz_duration(s); break;
    case 4: fuzz_small(s); break;
    default: fuzz_stat(s); break;
    }
    free(s);
    return 0;
}
