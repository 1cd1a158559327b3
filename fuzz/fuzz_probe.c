/* SPDX-License-Identifier: MIT */
/*
 * fuzz_probe.c: libFuzzer harness for the whole Linux probe on a fixture
 * tree: mg_create with proc_root / cgroup_root pointing at files the input
 * describes, then samples, the process-tree calls, the verdict and the
 * reports (src/lib/probe_*.c, ctx.c, ram.c, policy.c, report*.c). This is
 * how /proc/self/cgroup, mountinfo, the cgroup v1/v2 files, statm,
 * children lists, stat lines and smaps_rollup reach their parsers.
 *
 * Input: a text of sections, each a header line and the file's bytes:
 *     budget=64M pid=100 descendants      (options, before the first header)
 *     == proc/meminfo
 *     MemTotal:  16384000 kB
 *     ...
 *     == proc/self -> 100                  (a symlink; the target is digits)
 *     == cg/memory.max
 *     max
 * A section's bytes run to the next line that starts with "== "; paths
 * start with proc/ or cg/ and use [A-Za-z0-9._-] components (no "..", at
 * most 8 deep; at most 64 sections).
 * Seeds are the fixture trees of tests/fixtures (fuzz/tools/make_seeds.py).
 *
 * Checks: no crash or UB, every log message is one line, the level is a
 * level, and mg_format_json's text is valid JSON (fuzz_json.h).
 */
#include "fuzz_json.h"
#include "memguard.h"

#include <limits.h>

#define MAX_SECTIONS 64
#define MAX_DEPTH 8
/* every section makes at most MAX_DEPTH folders and one file */
#define MAX_MADE (MAX_SECTIONS * (MAX_DEPTH + 1))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The first "\n== " in [p, end), or NULL. */
static const uint8_t *next_header(const uint8_t *p, const uint8_t *end)
{
    for (; end - p >= 4; p++) {
        p = memchr(p, '\n', (size_t)(end - p - 3));
        if (!p) return NULL;
        if (p[1] == '=' && p[2] == '=' && p[3] == ' ') return p;
    }
    return NULL;
}

/* What this input created, removed in reverse order afterwards. */
static char made[MAX_MADE][4400];
static size_t nmade;

static void remember(const char *path)
{
    if (nmade < MAX_MADE) snprintf(made[nmade++], sizeof made[0], "%s", path);
}

static void remove_made(void)
{
    while (nmade > 0) {
        const char *p = made[--nmade];
        if (unlink(p) != 0) rmdir(p);
    }
}

/* A relative path the harness may create: proc/... or cg/..., components
 * of [A-Za-z0-9._-] that are not "." or "..", at most MAX_DEPTH deep and
 * 200 bytes long. */
static int safe_path(const char *p)
{
    if (strlen(p) > 200 || (strncmp(p, "proc", 4) != 0 && strncmp(p, "cg", 2) != 0)) return 0;
    int depth = 0;
    const char *c = p;
    while (*c) {
        const char *end = strchr(c, '/');
        size_t n = end ? (size_t)(end - c) : strlen(c);
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return 0;
        for (size_t i = 0; i < n; i++) {
            char ch = c[i];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
                return 0;
        }
        if (++depth > MAX_DEPTH) return 0;
        c = end ? end + 1 : c + n;
    }
    return depth >= 2 || strcmp(p, "proc") == 0 || strcmp(p, "cg") == 0;
}

/* mkdir -p of the parents of root/rel; 0 or -1. */
static int make_parents(const char *root, const char *rel)
{
    char path[4600];
    for (const char *s = strchr(rel, '/'); s; s = strchr(s + 1, '/')) {
        snprintf(path, sizeof path, "%s/%.*s", root, (int)(s - rel), rel);
        if (mkdir(path, 0700) == 0) remember(path);
        else if (errno != EEXIST) return -1;
    }
    return 0;
}

/* One "== path[ -> target]" section with its bytes. */
static void make_entry(const char *root, char *header, const uint8_t *body, size_t len)
{
    char *arrow = strstr(header, " -> ");
    const char *target = NULL;
    if (arrow) {
        *arrow = '\0';
        target = arrow + 4;
        if (!*target || strspn(target, "0123456789") != strlen(target)) return;
    }
    if (!safe_path(header) || make_parents(root, header) != 0) return;
    char path[4600];
    snprintf(path, sizeof path, "%s/%s", root, header);
    if (target) {
        if (symlink(target, path) == 0) remember(path);
    } else if (fz_write_file(path, body, len) == 0) {
        remember(path);
    }
}

/* Options before the first section. */
typedef struct opts {
    uint64_t budget;
    uint64_t pid;
    uint64_t descendants; /* 0: mg_watch_descendants not called */
} opts;

static void parse_opts(const char *text, opts *o)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", text);
    for (char *tok = strtok(buf, " \n"); tok; tok = strtok(NULL, " \n")) {
        if (strncmp(tok, "budget=", 7) == 0) (void)mg_parse_size(tok + 7, &o->budget);
        else if (strncmp(tok, "pid=", 4) == 0) (void)mg_parse_uint(tok + 4, INT_MAX, &o->pid);
        else if (strncmp(tok, "descendants=", 12) == 0)
            (void)mg_parse_uint(tok + 12, INT_MAX, &o->descendants);
    }
}

/* Splits the input into the options and the sections, making the files. */
static void build_tree(const char *root, const uint8_t *data, size_t size, opts *o)
{
    const uint8_t *end = data + size, *p = data;
    size_t nsec = 0;
    /* the options run to the first header */
    const uint8_t *first = size >= 3 && memcmp(data, "== ", 3) == 0 ? data : NULL;
    if (!first) {
        const uint8_t *q = next_header(data, end);
        first = q ? q + 1 : end;
    }
    char *text = fz_strndup(data, (size_t)(first - data));
    parse_opts(text, o);
    free(text);
    p = first;
    while (p < end && nsec++ < MAX_SECTIONS) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *hend = nl ? nl : end;
        char header[512];
        size_t hl = (size_t)(hend - p) - 3;
        if (hl >= sizeof header) hl = sizeof header - 1;
        memcpy(header, p + 3, hl);
        header[hl] = '\0';
        const uint8_t *body = nl ? nl + 1 : end;
        const uint8_t *next = next_header(body, end);
        const uint8_t *bend = next ? next + 1 : end;
        if (strlen(header) == hl) make_entry(root, header, body, (size_t)(bend - body));
        p = bend;
    }
}

static void log_fn(void *user, mg_log_level level, const char *msg)
{
    (void)user;
    FZ_CHECK(level >= MG_LOG_ERROR && level <= MG_LOG_DEBUG, "log level %d", (int)level);
    FZ_CHECK(msg && !strchr(msg, '\n'), "a log message of more than one line: %s", msg);
}

static void check_reports(const mg_ctx *ctx, const mg_snapshot *snap)
{
    static char buf[65536];
    mg_verdict v;
    mg_level lv = mg_classify(mg_ctx_config(ctx), snap, NULL, &v);
    FZ_CHECK(lv >= MG_LEVEL_SAFE && lv <= MG_LEVEL_CRITICAL, "level %d", (int)lv);
    int n = mg_format_json(mg_ctx_config(ctx), snap, &v, buf, sizeof buf);
    FZ_CHECK(n > 0 && (size_t)n < sizeof buf, "mg_format_json returned %d", n);
    cJSON_Delete(fz_json_check("mg_format_json", buf, (size_t)n));
    mg_text_opts t = {MG_LANG_EN, false};
    n = mg_format_system_check(snap, &t, buf, sizeof buf);
    FZ_CHECK(n > 0, "mg_format_system_check returned %d", n);
    t = (mg_text_opts){MG_LANG_JA, true};
    n = mg_format_warning(&v, &t, 7, buf, sizeof buf);
    FZ_CHECK(n >= 0, "mg_format_warning returned %d", n);
    (void)mg_next_poll_ms(mg_ctx_config(ctx), snap);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *root = fz_tmpdir();
    opts o = {0, 0, 0};
    build_tree(root, data, size, &o);

    char proc[4200], cg[4200];
    snprintf(proc, sizeof proc, "%s/proc", root);
    snprintf(cg, sizeof cg, "%s/cg", root);
    mg_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.proc_root = proc;
    cfg.cgroup_root = cg;
    cfg.no_gpu = true;
    cfg.pid = (int)o.pid;
    cfg.ram_budget_bytes = o.budget;
    cfg.log_fn = log_fn;
    cfg.log_level = MG_LOG_DEBUG;
    int err = 0;
    mg_ctx *ctx = mg_create(&cfg, &err);
    if (ctx) {
        mg_snapshot snap;
        if (mg_sample(ctx, &snap) == 0) check_reports(ctx, &snap);
        int pids[8];
        (void)mg_tree_pids(ctx, pids, 8);
        if (o.descendants && mg_watch_descendants(ctx, (int)o.descendants) == 0 &&
            mg_sample(ctx, &snap) == 0)
            check_reports(ctx, &snap);
        mg_destroy(ctx);
    } else {
        FZ_CHECK(err < 0, "mg_create failed with %d", err);
    }
    remove_made();
    return 0;
}
