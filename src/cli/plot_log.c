/* SPDX-License-Identifier: MIT */
/*
 * plot_log.c: reads the JSON-lines log of `memguard run --log` into what
 * the plot draws: the used fraction of every RAM limit weighed, the process
 * tree's figures, each GPU's used fraction, the thresholds, and the events
 * with their reasons. Each line is parsed with cJSON and every number the
 * plot uses is checked (finite, in range); a line that fails is skipped as
 * a whole and counted, never half used. A file holds one run per "start"
 * line (--log appends); one of them is read. Strings from the log are made
 * valid UTF-8 without control characters before anything draws them. It
 * draws nothing and writes nothing.
 */
#include "plot.h"
#include "run.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BYTES 1.8446744073709552e19 /* 2^64 */
#define MAX_FRAC 1000.0                 /* used fractions may pass 1 over a budget */
#define MAX_T_MS 1e12                   /* 31 years */

/* ---- text from the log -------------------------------------------------------- */

/* Copies s into dst as valid UTF-8 that XML accepts: control characters
 * become a space, invalid bytes U+FFFD (the library's JSON writer decides
 * which, and cJSON decodes its output again), U+FFFE / U+FFFF U+FFFD;
 * cut on a character boundary when too long (at most 339 bytes of s). */
static void clean_text(char *dst, size_t len, const char *s)
{
    char plain[340], quoted[2048];
    dst[0] = '\0';
    if (!s || len < 2) return;
    /* Control characters first, so the quoted form holds no escapes of
     * them (and mg_json_quote never writes one). */
    size_t n = 0;
    for (; s[n] && n + 1 < sizeof plain; n++)
        plain[n] = (unsigned char)s[n] < 0x20 || s[n] == 0x7F ? ' ' : s[n];
    plain[n] = '\0';
    mg_json_quote(plain, quoted, sizeof quoted); /* always a valid JSON string */
    cJSON *j = cJSON_Parse(quoted);
    const unsigned char *p = (const unsigned char *)(cJSON_IsString(j) ? j->valuestring : "");
    size_t o = 0;
    while (*p) {
        unsigned char c = *p;
        size_t need = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if (o + need >= len) break;
        if (need == 3 && c == 0xEF && p[1] == 0xBF && p[2] >= 0xBE) {
            memcpy(dst + o, "\xEF\xBF\xBD", 3);
            o += 3;
        } else {
            memcpy(dst + o, p, need);
            o += need;
        }
        p += need;
    }
    dst[o] = '\0';
    cJSON_Delete(j);
}

/* ---- numbers ------------------------------------------------------------------- */

/* A member that is a number in [lo, hi], or null or absent (*out = NAN).
 * False (with why) when it is anything else. */
static bool num_member(const cJSON *obj, const char *key, double lo, double hi, double *out,
                       char *why, size_t why_len)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NAN;
    if (!it || cJSON_IsNull(it)) return true;
    if (cJSON_IsNumber(it) && isfinite(it->valuedouble) && it->valuedouble >= lo &&
        it->valuedouble <= hi) {
        *out = it->valuedouble;
        return true;
    }
    snprintf(why, why_len, "'%s' is not a number from %g to %g", key, lo, hi);
    return false;
}

static const char *str_member(const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

static bool bool_member(const cJSON *obj, const char *key)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, key));
}

/* ---- one sample ------------------------------------------------------------------ */

typedef struct rec_limit {
    char source[16];
    double total, used;
} rec_limit;

typedef struct rec_gpu {
    double index, total, frac;
    char name[96];
} rec_gpu;

/* The numbers of one "sample" object, checked before any is kept. */
typedef struct rec {
    rec_limit lim[PLOT_MAX_LIMITS];
    size_t nlim;
    double tree_used, tree_rss, tree_pss;
    rec_gpu gpu[PLOT_MAX_GPUS];
    size_t ngpu;
    double warn_ram, stop_ram, warn_gpu, stop_gpu, budget;
    char gpu_state[24];
} rec;

static bool read_limits(const cJSON *ram, rec *r, char *why, size_t wl)
{
    const cJSON *lims = cJSON_GetObjectItemCaseSensitive(ram, "limits");
    if (!lims || cJSON_IsNull(lims)) return true;
    if (!cJSON_IsArray(lims)) {
        snprintf(why, wl, "'limits' is not a list");
        return false;
    }
    const cJSON *l;
    cJSON_ArrayForEach(l, lims) {
        const char *src = str_member(l, "source");
        if (!cJSON_IsObject(l) || !src) {
            snprintf(why, wl, "a RAM limit without a source");
            return false;
        }
        rec_limit x;
        if (!num_member(l, "total_bytes", 1, MAX_BYTES, &x.total, why, wl) ||
            !num_member(l, "used_bytes", 0, MAX_BYTES, &x.used, why, wl))
            return false;
        if (r->nlim < PLOT_MAX_LIMITS) {
            clean_text(x.source, sizeof x.source, src);
            r->lim[r->nlim++] = x;
        }
    }
    return true;
}

static bool read_gpus(const cJSON *sample, rec *r, char *why, size_t wl)
{
    const cJSON *gpus = cJSON_GetObjectItemCaseSensitive(sample, "gpus");
    if (!gpus || cJSON_IsNull(gpus)) return true;
    if (!cJSON_IsArray(gpus)) {
        snprintf(why, wl, "'gpus' is not a list");
        return false;
    }
    const cJSON *g;
    cJSON_ArrayForEach(g, gpus) {
        rec_gpu x;
        if (!cJSON_IsObject(g)) {
            snprintf(why, wl, "a GPU that is not an object");
            return false;
        }
        if (!num_member(g, "index", 0, 1e6, &x.index, why, wl) ||
            !num_member(g, "total_bytes", 0, MAX_BYTES, &x.total, why, wl) ||
            !num_member(g, "used_frac", 0, MAX_FRAC, &x.frac, why, wl))
            return false;
        if (isnan(x.index) || x.index != floor(x.index)) {
            snprintf(why, wl, "a GPU without a whole 'index'");
            return false;
        }
        clean_text(x.name, sizeof x.name, str_member(g, "name"));
        if (r->ngpu < PLOT_MAX_GPUS) r->gpu[r->ngpu++] = x;
    }
    return true;
}

static bool read_thresholds(const cJSON *sample, rec *r, char *why, size_t wl)
{
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(sample, "thresholds");
    r->warn_ram = r->stop_ram = r->warn_gpu = r->stop_gpu = r->budget = NAN;
    if (!th || cJSON_IsNull(th)) return true;
    return num_member(th, "warn_ram_frac", 0, 1, &r->warn_ram, why, wl) &&
           num_member(th, "stop_ram_frac", 0, 1, &r->stop_ram, why, wl) &&
           num_member(th, "warn_gpu_frac", 0, 1, &r->warn_gpu, why, wl) &&
           num_member(th, "stop_gpu_frac", 0, 1, &r->stop_gpu, why, wl) &&
           num_member(th, "ram_budget_bytes", 1, MAX_BYTES, &r->budget, why, wl);
}

static bool read_sample(const cJSON *sample, rec *r, char *why, size_t wl)
{
    memset(r, 0, sizeof *r);
    r->tree_used = r->tree_rss = r->tree_pss = NAN;
    if (!cJSON_IsObject(sample)) {
        snprintf(why, wl, "'sample' is not an object");
        return false;
    }
    const cJSON *ram = cJSON_GetObjectItemCaseSensitive(sample, "ram");
    if (cJSON_IsObject(ram) && !read_limits(ram, r, why, wl)) return false;
    const cJSON *tree = cJSON_GetObjectItemCaseSensitive(sample, "process_tree");
    if (cJSON_IsObject(tree) &&
        (!num_member(tree, "used_bytes", 0, MAX_BYTES, &r->tree_used, why, wl) ||
         !num_member(tree, "rss_bytes", 0, MAX_BYTES, &r->tree_rss, why, wl) ||
         !num_member(tree, "pss_bytes", 0, MAX_BYTES, &r->tree_pss, why, wl)))
        return false;
    clean_text(r->gpu_state, sizeof r->gpu_state, str_member(sample, "gpu_state"));
    return read_gpus(sample, r, why, wl) && read_thresholds(sample, r, why, wl);
}

/* ---- keeping points -------------------------------------------------------------- */

static int push(plot_series *s, double t, double v)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        plot_point *p = realloc(s->pt, cap * sizeof *p);
        if (!p) return -1;
        s->pt = p;
        s->cap = cap;
    }
    s->pt[s->n++] = (plot_point){t, v};
    return 0;
}

static void note_total(plot_series *s, double total)
{
    if (isnan(total)) return;
    if (isnan(s->total_lo) || total < s->total_lo) s->total_lo = total;
    if (isnan(s->total_hi) || total > s->total_hi) s->total_hi = total;
}

static void series_init(plot_series *s, const char *key, const char *name)
{
    memset(s, 0, sizeof *s);
    snprintf(s->key, sizeof s->key, "%s", key);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->total_lo = s->total_hi = NAN;
}

/* The series of RAM limit `source`, added when new; NULL when full. */
static plot_series *ram_series(plot_run *r, const char *source)
{
    char key[32];
    snprintf(key, sizeof key, "ram:%s", source);
    for (size_t i = 0; i < r->nram; i++)
        if (strcmp(r->ram[i].key, key) == 0) return &r->ram[i];
    if (r->nram == PLOT_MAX_LIMITS) return NULL;
    const char *name = strcmp(source, "meminfo") == 0 ? "machine"
                     : strcmp(source, "budget") == 0 ? "--ram-budget"
                     : strcmp(source, "commit") == 0 ? "commit limit" : source;
    series_init(&r->ram[r->nram], key, name);
    return &r->ram[r->nram++];
}

static plot_series *gpu_series(plot_run *r, const rec_gpu *g)
{
    char key[32], name[128];
    snprintf(key, sizeof key, "gpu:%.0f", g->index);
    for (size_t i = 0; i < r->ngpu; i++)
        if (strcmp(r->gpu[i].key, key) == 0) return &r->gpu[i];
    if (r->ngpu == PLOT_MAX_GPUS) return NULL;
    snprintf(name, sizeof name, "GPU %.0f%s%s", g->index, g->name[0] ? " " : "", g->name);
    series_init(&r->gpu[r->ngpu], key, name);
    return &r->gpu[r->ngpu++];
}

static int keep_sample(plot_run *r, double t, const rec *x)
{
    int rc = 0;
    for (size_t i = 0; i < x->nlim; i++) {
        plot_series *s = ram_series(r, x->lim[i].source);
        if (!s) continue;
        note_total(s, x->lim[i].total);
        double f = isnan(x->lim[i].total) || isnan(x->lim[i].used)
                       ? NAN : x->lim[i].used / x->lim[i].total;
        rc |= push(s, t, f < MAX_FRAC ? f : MAX_FRAC);
    }
    rc |= push(&r->tree_used, t, x->tree_used);
    rc |= push(&r->tree_rss, t, x->tree_rss);
    if (!isnan(x->tree_pss)) rc |= push(&r->tree_pss, t, x->tree_pss);
    for (size_t i = 0; i < x->ngpu; i++) {
        plot_series *s = gpu_series(r, &x->gpu[i]);
        if (!s) continue;
        note_total(s, x->gpu[i].total);
        rc |= push(s, t, x->gpu[i].frac);
    }
    r->warn_ram = x->warn_ram;
    r->stop_ram = x->stop_ram;
    r->warn_gpu = x->warn_gpu;
    r->stop_gpu = x->stop_gpu;
    r->budget = x->budget;
    if (x->gpu_state[0]) snprintf(r->gpu_state, sizeof r->gpu_state, "%s", x->gpu_state);
    r->samples++;
    return rc;
}

/* ---- events ---------------------------------------------------------------------- */

static const char *sig_text(double sig, char *buf, size_t len)
{
    if (isnan(sig) || sig < 1 || sig > 64) return "a signal";
    return signal_name((int)sig, buf, len);
}

/* memguard run's exit status in words (README's table). */
static const char *status_words(int st)
{
    switch (st) {
    case 0: return "finished";
    case MG_EXIT_MEMSTOP: return "checkpoint saved, stopped for memory";
    case MG_EXIT_MEMKILL: return "stopped by memguard without a checkpoint";
    case 126: return "could not be executed";
    case 127: return "not found";
    default: return st > 128 ? "died of a signal" : "the command's own status";
    }
}

/* An event's text into out, cut to fit (a cut text is still a text). */
static void put(char *out, size_t len, const char *fmt, ...) CLI_PRINTF(3, 4);
static void put(char *out, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, len, fmt, ap);
    va_end(ap);
}

/* A path's last part (the path itself when it ends in '/'; NULL stays). */
static const char *file_name(const char *path)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    return slash && slash[1] ? slash + 1 : path;
}

/* The text of an event line, from the line's own fields. */
static void event_text(const cJSON *j, const char *kind, plot_run *r, char *out, size_t len)
{
    char a[320], b[32];
    double x = NAN, y = NAN;
    char why[8];
    bool dry = bool_member(j, "dry_run");
    if (strcmp(kind, "warn") == 0 || strcmp(kind, "request") == 0) {
        clean_text(a, sizeof a, str_member(j, "reason"));
        num_member(j, "signalled", 0, 1e9, &x, why, sizeof why);
        num_member(j, "signal", 1, 64, &y, why, sizeof why);
        if (strcmp(kind, "request") == 0 && !isnan(x))
            put(out, len, "%s%s; %s to %.0f process%s", dry ? "dry run: " : "", a,
                     sig_text(y, b, sizeof b), x, x == 1 ? "" : "es");
        else
            put(out, len, "%s%s", dry ? "dry run: " : "", a);
    } else if (strcmp(kind, "ack") == 0) {
        clean_text(a, sizeof a, str_member(j, "checkpoint"));
        put(out, len, "checkpoint %s", a);
    } else if (strcmp(kind, "continue") == 0) {
        clean_text(a, sizeof a, file_name(str_member(j, "checkpoint")));
        char n[120];
        clean_text(n, sizeof n, str_member(j, "note"));
        put(out, len, "checkpoint %s, continuing%s%s", a, n[0] ? ": " : "", n);
    } else if (strcmp(kind, "restart") == 0) {
        clean_text(a, sizeof a, file_name(str_member(j, "resume")));
        num_member(j, "attempt", 1, 1e6, &x, why, sizeof why);
        put(out, len, "restart %.0f from %s", x, a);
    } else if (strcmp(kind, "term") == 0) {
        put(out, len, "%sSIGTERM to the tree: --grace ran out", dry ? "dry run: " : "");
    } else if (strcmp(kind, "kill") == 0) {
        clean_text(a, sizeof a, str_member(j, "why"));
        if (bool_member(j, "hard"))
            put(out, len, "%sSIGKILL at once: %s", dry ? "dry run: " : "", a);
        else
            put(out, len, "%sSIGKILL: --kill-after ran out after SIGTERM",
                     dry ? "dry run: " : "");
    } else if (strcmp(kind, "cleanup") == 0) {
        num_member(j, "signal", 1, 64, &x, why, sizeof why);
        put(out, len, "%s to what outlived the command", sig_text(x, b, sizeof b));
    } else if (strcmp(kind, "signal") == 0) {
        num_member(j, "signal", 1, 64, &x, why, sizeof why);
        num_member(j, "pid", 1, 1e9, &y, why, sizeof why);
        put(out, len, "%s to pid %.0f (its handler came late)", sig_text(x, b, sizeof b), y);
    } else if (strcmp(kind, "forward") == 0 || strcmp(kind, "ignored_signal") == 0) {
        num_member(j, "signal", 1, 64, &x, why, sizeof why);
        num_member(j, "from_pid", 0, 1e9, &y, why, sizeof why);
        put(out, len, "%s from pid %.0f %s", sig_text(x, b, sizeof b), y,
                 kind[0] == 'f' ? "forwarded to the command" : "ignored");
    } else if (strcmp(kind, "exit") == 0) {
        num_member(j, "code", -1, 255, &x, why, sizeof why);
        num_member(j, "signal", 0, 64, &y, why, sizeof why);
        char head[64];
        if (!isnan(y) && y > 0)
            snprintf(head, sizeof head, "the command died of %s", sig_text(y, b, sizeof b));
        else
            snprintf(head, sizeof head, "the command exited with %.0f", isnan(x) ? -1.0 : x);
        put(out, len, "%s; memguard exit %d: %s", head, r->exit_status,
                 status_words(r->exit_status));
    } else {
        out[0] = '\0';
    }
}

static int keep_event(plot_run *r, double t, const char *kind, const cJSON *j, size_t seq)
{
    if (r->nev == PLOT_MAX_EVENTS) {
        r->ev_dropped++;
        return 0;
    }
    if (r->nev == r->ev_cap) {
        size_t cap = r->ev_cap ? r->ev_cap * 2 : 16;
        plot_event *e = realloc(r->ev, cap * sizeof *e);
        if (!e) return -1;
        r->ev = e;
        r->ev_cap = cap;
    }
    plot_event *e = &r->ev[r->nev++];
    e->t = t;
    e->seq = seq;
    snprintf(e->kind, sizeof e->kind, "%s", kind);
    event_text(j, kind, r, e->text, sizeof e->text);
    return 0;
}

/* The start line: the command (its program without the folder), its
 * pid, the hard limits. */
static void keep_start(plot_run *r, const cJSON *j)
{
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(j, "command");
    const cJSON *a;
    size_t o = 0;
    r->command[0] = '\0';
    cJSON_ArrayForEach(a, cmd) {
        char word[300];
        if (!cJSON_IsArray(cmd) || !cJSON_IsString(a)) continue;
        const char *w = a->valuestring, *slash = strrchr(w, '/');
        clean_text(word, sizeof word, o == 0 && slash && slash[1] ? slash + 1 : w);
        int n = snprintf(r->command + o, sizeof r->command - o, "%s%s", o ? " " : "", word);
        if (n < 0 || (size_t)n >= sizeof r->command - o) break;
        o += (size_t)n;
    }
    char why[8];
    double pid;
    num_member(j, "pid", 1, 1e9, &pid, why, sizeof why);
    r->pid = isnan(pid) ? 0 : (int)pid;
    r->dry_run = bool_member(j, "dry_run");
    num_member(j, "hard_ram_frac", 0, 1, &r->hard_ram, why, sizeof why);
    num_member(j, "hard_gpu_frac", 0, 1, &r->hard_gpu, why, sizeof why);
}

static bool known_event(const char *e)
{
    static const char *const names[] = {"start", "sample", "warn", "request", "signal", "ack",
                                        "term", "kill", "cleanup", "forward", "ignored_signal",
                                        "restart", "continue", "exit"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(e, names[i]) == 0) return true;
    return false;
}

/* ---- the file --------------------------------------------------------------------- */

typedef struct reader {
    plot_run *r;
    unsigned which;     /* 0: the last run */
    size_t run;         /* the run the lines belong to now (1-based) */
    bool run_has_lines;
    size_t valid;       /* valid lines in the file */
    size_t seq;
    char *line;
    size_t cap;
} reader;

static void run_init(plot_run *r)
{
    memset(r, 0, sizeof *r);
    r->hard_ram = r->hard_gpu = NAN;
    r->warn_ram = r->stop_ram = r->warn_gpu = r->stop_gpu = r->budget = NAN;
    series_init(&r->tree_used, "tree:used", "judged (PSS, or the estimate between readings)");
    series_init(&r->tree_rss, "tree:rss", "RSS sum");
    series_init(&r->tree_pss, "tree:pss", "PSS read");
}

void plot_run_free(plot_run *r)
{
    for (size_t i = 0; i < r->nram; i++) free(r->ram[i].pt);
    for (size_t i = 0; i < r->ngpu; i++) free(r->gpu[i].pt);
    free(r->tree_used.pt);
    free(r->tree_rss.pt);
    free(r->tree_pss.pt);
    free(r->ev);
    run_init(r);
}

/* Reads one line (without its newline) into rd->line. 1: a line, 0: the
 * end, -1: a read error or no memory. A line longer than PLOT_MAX_LINE is
 * read to its end but kept empty, with *too_long set. */
static int next_line(FILE *f, reader *rd, size_t *len, bool *too_long, bool *nul)
{
    size_t n = 0;
    int c;
    bool any = false;
    *too_long = *nul = false;
    while ((c = getc(f)) != EOF) {
        any = true;
        if (c == '\n') break;
        if (c == 0) *nul = true;
        if (*too_long) continue;
        if (n + 1 >= PLOT_MAX_LINE) {
            *too_long = true;
            continue;
        }
        if (n + 1 >= rd->cap) {
            size_t cap = rd->cap ? rd->cap * 2 : 4096;
            char *p = realloc(rd->line, cap);
            if (!p) return -1;
            rd->line = p;
            rd->cap = cap;
        }
        rd->line[n++] = (char)c;
    }
    if (ferror(f)) return -1;
    if (rd->line) rd->line[n] = '\0';
    *len = n;
    return any ? 1 : 0;
}

/* Whether the line belongs to the run being read; starts a new run at a
 * start line (forgetting the old one when the last is wanted). */
static bool in_run(reader *rd, bool is_start)
{
    if (is_start && rd->run_has_lines) {
        rd->run++;
        rd->run_has_lines = false;
        if (rd->which == 0) plot_run_free(rd->r);
    }
    rd->run_has_lines = true;
    return rd->which == 0 || rd->run == rd->which;
}

/* One parsed line. 0: kept or ignored, 1: skipped (why), -1: no memory. */
static int take_line(reader *rd, const cJSON *j, char *why, size_t wl)
{
    const char *event = str_member(j, "event");
    double t_ms;
    if (!cJSON_IsObject(j) || !event) {
        snprintf(why, wl, "not a memguard run log line (no \"event\")");
        return 1;
    }
    if (!num_member(j, "t_ms", 0, MAX_T_MS, &t_ms, why, wl)) return 1;
    if (isnan(t_ms)) {
        snprintf(why, wl, "no 't_ms'");
        return 1;
    }
    const cJSON *sample = cJSON_GetObjectItemCaseSensitive(j, "sample");
    rec x;
    if (sample && !read_sample(sample, &x, why, wl)) return 1;
    rd->valid++;
    if (!known_event(event)) return 0; /* a newer memguard's event: not drawn */
    bool is_start = strcmp(event, "start") == 0;
    if (!in_run(rd, is_start)) return 0;
    plot_run *r = rd->r;
    double t = t_ms / 1000.0;
    if (t > r->t_end) r->t_end = t;
    if (sample && keep_sample(r, t, &x) < 0) return -1;
    if (is_start) {
        keep_start(r, j);
        return 0;
    }
    if (strcmp(event, "exit") == 0) {
        double st;
        char w[8];
        num_member(j, "exit_status", 0, 255, &st, w, sizeof w);
        r->exited = true;
        r->exit_status = isnan(st) ? -1 : (int)st;
        num_member(j, "signal", 0, 64, &st, w, sizeof w);
        r->exit_signal = isnan(st) ? 0 : (int)st;
    }
    if (strcmp(event, "sample") == 0) return 0;
    return keep_event(r, t, event, j, rd->seq++) < 0 ? -1 : 0;
}

static void skip(plot_stats *st, size_t line_no, const char *why)
{
    st->skipped++;
    if (!st->first_bad) {
        st->first_bad = line_no;
        snprintf(st->why, sizeof st->why, "%s", why);
    }
}

/* The log is written in time order; a hand-made or concatenated one may
 * not be. */
static int cmp_point(const void *a, const void *b)
{
    double x = ((const plot_point *)a)->t, y = ((const plot_point *)b)->t;
    return (x > y) - (x < y);
}

static int cmp_event(const void *a, const void *b)
{
    const plot_event *x = a, *y = b;
    if (x->t != y->t) return (x->t > y->t) - (x->t < y->t);
    return (x->seq > y->seq) - (x->seq < y->seq);
}

static void sort_series(plot_series *s)
{
    for (size_t i = 1; i < s->n; i++)
        if (s->pt[i].t < s->pt[i - 1].t) {
            qsort(s->pt, s->n, sizeof *s->pt, cmp_point);
            return;
        }
}

static void sort_run(plot_run *r)
{
    for (size_t i = 0; i < r->nram; i++) sort_series(&r->ram[i]);
    for (size_t i = 0; i < r->ngpu; i++) sort_series(&r->gpu[i]);
    sort_series(&r->tree_used);
    sort_series(&r->tree_rss);
    sort_series(&r->tree_pss);
    if (r->nev > 1) qsort(r->ev, r->nev, sizeof *r->ev, cmp_event);
}

/* Parses one raw line: skipped (1, with why) unless it is one JSON
 * object and nothing else. */
static int parse_line(reader *rd, size_t len, bool too_long, bool nul, char *why, size_t wl)
{
    if (too_long) {
        snprintf(why, wl, "longer than %u bytes", PLOT_MAX_LINE);
        return 1;
    }
    if (nul) {
        snprintf(why, wl, "not JSON (a NUL byte)");
        return 1;
    }
    const char *end = NULL;
    cJSON *j = len ? cJSON_ParseWithLengthOpts(rd->line, len, &end, 0) : NULL;
    if (j && end) end += strspn(end, " \t\r");
    if (!j || !end || end != rd->line + len) {
        cJSON_Delete(j);
        snprintf(why, wl, len ? "not JSON, or cut short" : "an empty line");
        return 1;
    }
    int rc = take_line(rd, j, why, wl);
    cJSON_Delete(j);
    return rc;
}

int plot_read(FILE *f, unsigned which, plot_run *r, plot_stats *st, char *err, size_t err_len)
{
    reader rd = {.r = r, .which = which, .run = 1};
    memset(st, 0, sizeof *st);
    run_init(r);
    int rc = 0;
    for (;;) {
        size_t len;
        bool too_long, nul;
        int got = next_line(f, &rd, &len, &too_long, &nul);
        if (got == 0) break;
        if (got < 0) {
            snprintf(err, err_len, "%s", ferror(f) ? strerror(errno) : "out of memory");
            rc = -2;
            break;
        }
        st->lines++;
        char why[96];
        int k = parse_line(&rd, len, too_long, nul, why, sizeof why);
        if (k < 0) {
            snprintf(err, err_len, "out of memory");
            rc = -2;
            break;
        }
        if (k > 0) skip(st, st->lines, why);
    }
    free(rd.line);
    st->runs = rd.valid ? rd.run : 0;
    if (!rc && rd.valid == 0) {
        if (st->lines == 0)
            snprintf(err, err_len, "empty: no memguard run log lines");
        else
            snprintf(err, err_len, "no memguard run log line in %zu line%s (line %zu: %s)",
                     st->lines, st->lines == 1 ? "" : "s", st->first_bad, st->why);
        rc = -1;
    } else if (!rc && which > st->runs) {
        snprintf(err, err_len, "holds %zu run%s, not %u", st->runs, st->runs == 1 ? "" : "s",
                 which);
        rc = -1;
    }
    if (rc) plot_run_free(r);
    else sort_run(r);
    return rc;
}
