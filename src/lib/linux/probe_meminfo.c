/* SPDX-License-Identifier: MIT */
/*
 * probe_meminfo.c: RAM and swap from /proc/meminfo, through a descriptor
 * kept open and re-read with pread. MemAvailable is the figure that counts
 * (DESIGN.md 4); before kernel 3.14 it is estimated as MemFree + Buffers +
 * Cached, and the log says so once. A truncated or garbled file is
 * unknown, never a number. It does not combine RAM with the cgroup limit
 * (ram.c does).
 */
#include "probe.h"

enum { MI_TOTAL, MI_FREE, MI_AVAIL, MI_BUFFERS, MI_CACHED, MI_SWAPTOTAL,
       MI_SWAPFREE, MI_COUNT };

#define MI_KEY(k) {k, sizeof k - 1}
static const struct { const char *key; size_t len; } mi_keys[MI_COUNT] = {
    MI_KEY("MemTotal"), MI_KEY("MemFree"), MI_KEY("MemAvailable"), MI_KEY("Buffers"),
    MI_KEY("Cached"), MI_KEY("SwapTotal"), MI_KEY("SwapFree")
};
#undef MI_KEY

/* Parses the keys we use from buf (n bytes, NUL-terminated). Every line of
 * a real meminfo ends with '\n', so a last line without one is a truncated
 * read and is not trusted. A wanted key whose value is not "<digits> kB"
 * makes the whole file garbage: a number read out of a corrupt file would
 * look like a real reading. The scan stops once every key is found (line
 * 16 of ~55: the kernel lists them first), which made the parse a third
 * of its cost. Returns NULL on success or the reason it failed; have[]
 * says which keys were found. */
static const char *parse_meminfo(const char *buf, size_t n, uint64_t val[MI_COUNT],
                                 bool have[MI_COUNT])
{
    for (int i = 0; i < MI_COUNT; i++) have[i] = false;
    const bool truncated = n == 0 || buf[n - 1] != '\n';
    const char *p = buf, *end = buf + n;
    while (end > buf && end[-1] != '\n') end--; /* drop a cut last line */
    int found = 0;
    while (p < end && found < MI_COUNT) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)); /* end ends a line */
        const char *colon = memchr(p, ':', (size_t)(nl - p));
        if (colon) {
            size_t klen = (size_t)(colon - p);
            /* ~16 lines, 7 keys: compare the length and first byte before
             * the bytes. */
            for (int i = 0; i < MI_COUNT; i++) {
                if (mi_keys[i].len != klen || p[0] != mi_keys[i].key[0] ||
                    memcmp(p, mi_keys[i].key, klen))
                    continue;
                const char *v = colon + 1;
                uint64_t kb;
                if (mg__parse_u64(&v, &kb) != 0) return "a value is not a number";
                while (*v == ' ') v++;
                if (strncmp(v, "kB", 2) != 0 || (v[2] != '\n'))
                    return "a value has no kB unit";
                if (kb > UINT64_MAX / 1024u) return "a value overflows";
                if (have[i]) return "a key appears twice";
                val[i] = kb * 1024u;
                have[i] = true;
                found++;
                break;
            }
        }
        p = nl + 1;
    }
    if (!have[MI_TOTAL]) return truncated ? "truncated before MemTotal"
                                          : "no MemTotal";
    if (!have[MI_AVAIL] &&
        !(have[MI_FREE] && have[MI_BUFFERS] && have[MI_CACHED]))
        return truncated ? "truncated before MemAvailable"
                         : "neither MemAvailable nor MemFree+Buffers+Cached";
    return NULL;
}

/* Reads meminfo into snap. Returns 0, or MG_EIO / MG_EPARSE. */
int mg__probe_meminfo(mg__probe *p, mg_snapshot *snap)
{
    /* 1503 bytes here (probes.md 3.1); 8 KiB leaves room for big NUMA
     * machines' extra keys. */
    char buf[8192];
    uint64_t val[MI_COUNT] = {0};
    bool have[MI_COUNT];
    const char *why = NULL;

    snap->ram.meminfo_known = false;
    snap->swap.known = false;
    ssize_t n = mg__pread_single(p->meminfo_fd, buf, sizeof buf);
    if (n < 0) {
        why = n == MG_ENOBUFS ? "larger than 8 KiB" : "read failed";
    } else {
        why = parse_meminfo(buf, (size_t)n, val, have);
    }
    if (why) {
        if (!p->meminfo_bad)
            mg__logf(&p->log, MG_LOG_WARN, "%s/meminfo unusable: %s",
                     p->proc_root, why);
        p->meminfo_bad = true;
        if (n >= 0 && have[MI_SWAPTOTAL] && have[MI_SWAPFREE]) {
            snap->swap.known = true;
            snap->swap.total_bytes = val[MI_SWAPTOTAL];
            snap->swap.free_bytes = val[MI_SWAPFREE];
        }
        return n < 0 ? MG_EIO : MG_EPARSE;
    }
    if (p->meminfo_bad)
        mg__logf(&p->log, MG_LOG_INFO, "%s/meminfo readable again",
                 p->proc_root);
    p->meminfo_bad = false;

    uint64_t avail = val[MI_AVAIL];
    if (!have[MI_AVAIL]) {
        /* Kernels before 3.14 have no MemAvailable (probes.md 3.1). */
        uint64_t est = val[MI_FREE];
        est = est + val[MI_BUFFERS] < est ? UINT64_MAX : est + val[MI_BUFFERS];
        est = est + val[MI_CACHED] < est ? UINT64_MAX : est + val[MI_CACHED];
        avail = est > val[MI_TOTAL] ? val[MI_TOTAL] : est;
        if (!p->logged_estimate)
            mg__logf(&p->log, MG_LOG_INFO,
                     "no MemAvailable (kernel < 3.14): estimating it as "
                     "MemFree + Buffers + Cached");
        p->logged_estimate = true;
    }
    snap->ram.meminfo_known = true;
    snap->ram.mem_total_bytes = val[MI_TOTAL];
    snap->ram.mem_available_bytes = avail;
    if (have[MI_SWAPTOTAL] && have[MI_SWAPFREE]) {
        snap->swap.known = true;
        snap->swap.total_bytes = val[MI_SWAPTOTAL];
        snap->swap.free_bytes = val[MI_SWAPFREE];
    }
    return 0;
}
