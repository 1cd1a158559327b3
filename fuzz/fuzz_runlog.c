/* SPDX-License-Identifier: MIT */
/*
 * fuzz_runlog.c: libFuzzer harness for the JSON-lines log of `memguard run
 * --log` (src/cli/runlog.c: runlog_event, and the library's
 * mg_format_json inside each sample line). Every line it writes must be
 * one valid JSON text (fuzz_json.h: cJSON, UTF-8, no raw control bytes),
 * whatever the strings and readings were.
 *
 * Input, read front to back (missing bytes read as zero):
 *     1 byte   the event: start, warn, request, kill, ack, sample, or a
 *              bare mg_json_quote call (then a buffer size, a string)
 *     8 bytes  t_ms
 *     strings  each a length byte and that many bytes: the command's
 *              arguments (start), the reason, the stop file, the checkpoint
 *     the rest a snapshot, field by field (booleans from bits, numbers and
 *              doubles from raw bytes, NaN and infinities included, the
 *              fixed-size text fields filled whole, unterminated)
 * The "extra" fragments are built as src/cli/supervise.c builds them, with
 * its buffer sizes. Besides validity, a quoted string must decode to the
 * text it was given (invalid UTF-8 as U+FFFD), or to a prefix of that when
 * it had to be cut, and mg_json_quote must say MG_ENOBUFS exactly then.
 */
#include "fuzz_json.h"
#include "memguard.h"
#include "run.h"

#include <inttypes.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char log_path[4200];
static runlog *rlog;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(log_path, sizeof log_path, "%s/run.jsonl", fz_tmpdir());
    rlog = runlog_open(log_path);
    if (!rlog) abort();
    return 0;
}

/* ---- reading the input ----------------------------------------------------- */

typedef struct rd {
    const uint8_t *p;
    size_t n;
} rd;

static uint8_t rd_u8(rd *r)
{
    if (!r->n) return 0;
    r->n--;
    return *r->p++;
}

static uint64_t rd_u64(rd *r)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)rd_u8(r) << (8 * i);
    return v;
}

static double rd_double(rd *r)
{
    uint64_t u = rd_u64(r);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static void rd_bytes(rd *r, char *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = (char)rd_u8(r);
}

/* A length-prefixed string, NUL-terminated into dst (dst_len > 255). */
static void rd_str(rd *r, char *dst)
{
    size_t n = rd_u8(r);
    rd_bytes(r, dst, n);
    dst[n] = '\0';
}

static void rd_snapshot(rd *r, mg_snapshot *s)
{
    memset(s, 0, sizeof *s);
    uint8_t bits = rd_u8(r);
    s->ram.known = bits & 1;
    s->swap.known = bits & 2;
    s->cgroup.known = bits & 4;
    s->cgroup.has_limit = bits & 8;
    s->tree.known = bits & 16;
    s->tree.pss_known = bits & 32;
    s->psi.known = bits & 64;
    s->trainer_known = bits & 128;
    s->time_ms = rd_u64(r);
    s->sample_us = rd_u64(r);
    s->ram.source = (mg_ram_source)(rd_u8(r) % 3);
    s->ram.total_bytes = rd_u64(r);
    s->ram.used_bytes = rd_u64(r);
    s->ram.available_bytes = rd_u64(r);
    s->ram.used_frac = rd_double(r);
    s->ram.meminfo_known = s->ram.known;
    s->ram.mem_total_bytes = rd_u64(r);
    s->swap.total_bytes = rd_u64(r);
    s->swap.free_bytes = rd_u64(r);
    s->cgroup.version = rd_u8(r) % 2 + 1;
    rd_bytes(r, s->cgroup.path, sizeof s->cgroup.path);
    rd_bytes(r, s->cgroup.limit_path, sizeof s->cgroup.limit_path);
    s->cgroup.limit_bytes = rd_u64(r);
    s->cgroup.usage_known = s->cgroup.known;
    s->cgroup.usage_bytes = rd_u64(r);
    s->tree.pid = (int)rd_u64(r);
    s->tree.nprocs = rd_u8(r);
    s->tree.rss_bytes = rd_u64(r);
    s->tree.pss_bytes = rd_u64(r);
    s->tree.used_bytes = s->tree.pss_known ? s->tree.pss_bytes : s->tree.rss_bytes;
    s->psi.some_avg10 = rd_double(r);
    s->psi.full_avg10 = rd_double(r);
    s->gpu_state = (mg_gpu_state)(rd_u8(r) % 6);
    s->gpu_count = rd_u8(r) % (MG_MAX_GPUS + 1);
    for (unsigned i = 0; i < s->gpu_count; i++) {
        mg_gpu *g = &s->gpus[i];
        g->index = i;
        rd_bytes(r, g->name, sizeof g->name);
        rd_bytes(r, g->uuid, sizeof g->uuid);
        g->known = rd_u8(r) & 1;
        g->total_bytes = rd_u64(r);
        g->free_bytes = rd_u64(r);
        g->used_frac = rd_double(r);
    }
    s->trainer_allocated_bytes = rd_u64(r);
    s->trainer_reserved_bytes = rd_u64(r);
}

/* ---- checking what was written -------------------------------------------- */

/* A JSON string written from `given` decodes to it (invalid UTF-8 as
 * U+FFFD), or to a prefix of that when it had to be cut (cut == 1), never
 * to other text; cut == -1: either. */
static void check_decoded(const char *what, const char *decoded, const char *given, int cut)
{
    char *want = fz_utf8_replaced(given);
    size_t n = strlen(decoded), w = strlen(want);
    FZ_CHECK(n <= w && memcmp(decoded, want, n) == 0, "%s decodes to other text than it was "
             "given", what);
    FZ_CHECK(cut != 0 || n == w, "%s was cut (%zu of %zu bytes) but says it fit", what, n, w);
    FZ_CHECK(cut != 1 || n < w, "%s fits whole but says it was cut", what);
    free(want);
}

static void check_string(const cJSON *doc, const char *key, const char *given)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, key);
    FZ_CHECK(cJSON_IsString(v), "\"%s\" is not a string", key);
    check_decoded(key, v->valuestring, given, -1);
}

/* Reads the log back: at most one line (runlog drops a line rather than
 * cut it), which must be valid JSON of this event. Empties the log. */
static void check_log(const char *event, const char *key1, const char *want1,
                      const char *key2, const char *want2)
{
    static char buf[1 << 17];
    int fd = open(log_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) abort();
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n < 0 || truncate(log_path, 0) != 0) abort();
    if (n == 0) return;
    FZ_CHECK(buf[n - 1] == '\n', "the line has no newline");
    FZ_CHECK(memchr(buf, '\n', (size_t)n - 1) == NULL, "more than one line");
    cJSON *doc = fz_json_check("runlog line", buf, (size_t)n);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "event");
    FZ_CHECK(cJSON_IsString(e) && strcmp(e->valuestring, event) == 0, "event");
    if (key1) check_string(doc, key1, want1);
    if (key2) check_string(doc, key2, want2);
    cJSON_Delete(doc);
}

/* ---- the events, as supervise.c builds them ---------------------------------- */

static void ev_start(rd *r, uint64_t t)
{
    char q[4096], extra[4200], arg[256];
    size_t pos = 0;
    q[0] = '\0';
    unsigned argc = rd_u8(r) % 9;
    for (unsigned i = 0; i < argc && pos < sizeof q - 600; i++) {
        char one[512];
        rd_str(r, arg);
        mg_json_quote(arg, one, sizeof one);
        pos += (size_t)snprintf(q + pos, sizeof q - pos, "%s%s", pos ? "," : "", one);
    }
    snprintf(extra, sizeof extra, "\"pid\":%d,\"command\":[%s],\"dry_run\":%s", 1234, q,
             "false");
    runlog_event(rlog, "start", t, extra, NULL, NULL, NULL);
    check_log("start", NULL, NULL, NULL, NULL);
}

static void ev_reason(rd *r, uint64_t t, const char *event, const mg_config *cfg,
                      const mg_snapshot *snap, const mg_verdict *v)
{
    char reason[256], stop[256], q[300], f[RUN_PATH_MAX + 8], extra[RUN_PATH_MAX + 1024];
    rd_str(r, reason);
    rd_str(r, stop);
    mg_json_quote(reason, q, sizeof q);
    if (strcmp(event, "warn") == 0) {
        snprintf(extra, 400, "\"reason\":%s", q);
        runlog_event(rlog, event, t, extra, cfg, snap, v);
        check_log(event, "reason", reason, NULL, NULL);
    } else if (strcmp(event, "kill") == 0) {
        snprintf(extra, 512, "\"why\":%s,\"hard\":true,\"dry_run\":%s,\"latency_ms\":%.3f", q,
                 "false", 0.25);
        runlog_event(rlog, event, t, extra, cfg, snap, v);
        check_log(event, "why", reason, NULL, NULL);
    } else {
        mg_json_quote(stop, f, sizeof f);
        snprintf(extra, sizeof extra,
                 "\"reason\":%s,\"signal\":%d,\"signal_name\":\"%s\",\"signalled\":%zu,"
                 "\"stop_file\":%s,\"dry_run\":%s,\"latency_ms\":%.3f,\"grace_ms\":%" PRIu64,
                 q, 10, "SIGUSR1", (size_t)1, f, "false", 0.5, (uint64_t)60000);
        runlog_event(rlog, event, t, extra, cfg, snap, v);
        check_log(event, "reason", reason, "stop_file", stop);
    }
}

static void ev_ack(rd *r, uint64_t t)
{
    char ckpt[256], q[RUN_PATH_MAX + 8], extra[RUN_PATH_MAX + 64];
    rd_str(r, ckpt);
    mg_json_quote(ckpt, q, sizeof q);
    snprintf(extra, sizeof extra, "\"checkpoint\":%s", q);
    runlog_event(rlog, "ack", t, extra, NULL, NULL, NULL);
    check_log("ack", "checkpoint", ckpt, NULL, NULL);
}

/* mg_json_quote itself, into a buffer of 3-258 bytes. */
static void ev_quote(rd *r)
{
    char s[256], buf[258];
    size_t len = 3 + rd_u8(r);
    rd_str(r, s);
    int rc = mg_json_quote(s, buf, len);
    FZ_CHECK(rc == 0 || rc == MG_ENOBUFS, "mg_json_quote returned %d", rc);
    size_t n = strlen(buf);
    FZ_CHECK(n < len, "%zu bytes written into %zu", n + 1, len);
    cJSON *doc = fz_json_check("mg_json_quote", buf, n);
    FZ_CHECK(cJSON_IsString(doc), "not a JSON string");
    check_decoded("mg_json_quote's string", doc->valuestring, s, rc == MG_ENOBUFS);
    cJSON_Delete(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rd r = {data, size};
    unsigned kind = rd_u8(&r) % 7;
    if (kind == 6) {
        ev_quote(&r);
        return 0;
    }
    uint64_t t = rd_u64(&r);
    if (kind == 0) {
        ev_start(&r, t);
        return 0;
    }
    if (kind == 4) {
        ev_ack(&r, t);
        return 0;
    }
    /* the events that carry a sample: its strings come first */
    rd strings = r;
    char skip[256];
    rd_str(&r, skip);
    rd_str(&r, skip);
    mg_snapshot snap;
    rd_snapshot(&r, &snap);
    mg_config cfg;
    memset(&cfg, 0, sizeof cfg);
    mg_verdict v;
    (void)mg_classify(&cfg, &snap, NULL, &v);
    if (kind == 5) {
        runlog_event(rlog, "sample", t, NULL, &cfg, &snap, &v);
        check_log("sample", NULL, NULL, NULL, NULL);
        return 0;
    }
    static const char *const names[] = {"warn", "request", "kill"};
    ev_reason(&strings, t, names[kind - 1], &cfg, &snap, &v);
    return 0;
}
