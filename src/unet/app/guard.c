/* SPDX-License-Identifier: MIT */
/*
 * guard.c: the trainer's memory monitor (see guard.h) on top of
 * libmemguard. Two contexts: one for the loop's checks at the seed's
 * points, one for the watcher thread (a context is not thread-safe). The
 * watcher only raises a flag; the loop samples again and decides at its
 * next batch boundary, so nothing but the loop ever acts.
 */
#include "guard.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A warning repeats at most this often while the level stays at warn. */
#define WARN_EVERY_MS 30000u

struct guard {
    mg_ctx *ctx;               /* the loop's */
    mg_ctx *wctx;              /* the watcher's */
    guard_opts o;
    int row;                   /* batch-table row used, 0 = flags */
    mg_stop *stop;
    mg_policy_state st;
    mg_verdict v;
    bool requested;
    uint64_t last_warn_ms;
    bool warned;
    mg_text_opts txt;
    pthread_t th;
    bool th_running;
    atomic_int flag;           /* the watcher saw critical */
    atomic_int quit;
    atomic_uint lead_ms;       /* guard_note_save's lead, 0 = the default */
    char label[300];           /* before each warning line: "[rank 1 @ host] " */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The seed's recommended thresholds per batch size (warn/stop, GPU then
 * RAM); other sizes take the nearest row, the stricter one on a tie. */
static const struct {
    int batch;
    double wg, sg, wr, sr;
} table[] = {
    {4, 0.90, 0.92, 0.85, 0.88},
    {6, 0.88, 0.90, 0.83, 0.86},
    {8, 0.85, 0.88, 0.80, 0.84},
};

static int table_row(int batch)
{
    int best = 0;
    for (int i = 1; i < 3; i++) {
        int d = abs(batch - table[i].batch), db = abs(batch - table[best].batch);
        if (d <= db) best = i; /* ties go to the larger batch: stricter */
    }
    return best;
}

double guard_table_warn_ram(int batch)
{
    return table[table_row(batch)].wr;
}

static void *watcher(void *arg)
{
    guard *g = arg;
    mg_config cfg = *mg_ctx_config(g->wctx);
    while (!atomic_load(&g->quit)) {
        mg_snapshot s;
        mg_verdict v;
        unsigned lead = atomic_load(&g->lead_ms);
        if (lead) cfg.predict_lead_ms = lead;
        mg_sample(g->wctx, &s);
        if (mg_classify(&cfg, &s, NULL, &v) == MG_LEVEL_CRITICAL) atomic_store(&g->flag, 1);
        uint32_t ms = mg_next_poll_ms(&cfg, &s);
        /* Sleep in slices so closing never waits a whole second. */
        for (uint32_t slept = 0; slept < ms && !atomic_load(&g->quit); slept += 50) {
            uint32_t d = ms - slept < 50 ? ms - slept : 50;
            struct timespec ts = {0, (long)d * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

/* The library's configuration for o: its thresholds, or the table row of
 * its batch when none was given (*row then names it, else 0). */
static int fill_config(const guard_opts *o, mg_config *cfg, int *row, char *err, size_t err_len)
{
    memset(cfg, 0, sizeof *cfg);
    *row = 0;
    bool given = o->warn_gpu != 0.0 || o->stop_gpu != 0.0 || o->warn_ram != 0.0 ||
                 o->stop_ram != 0.0;
    if (given) {
        cfg->warn_gpu_frac = o->warn_gpu;
        cfg->stop_gpu_frac = o->stop_gpu;
        cfg->warn_ram_frac = o->warn_ram;
        cfg->stop_ram_frac = o->stop_ram;
    } else {
        int r = table_row(o->batch);
        *row = table[r].batch;
        cfg->warn_gpu_frac = table[r].wg;
        cfg->stop_gpu_frac = table[r].sg;
        cfg->warn_ram_frac = table[r].wr;
        cfg->stop_ram_frac = table[r].sr;
    }
    cfg->check_train_every = o->check_train;
    cfg->check_eval_every = o->check_eval;
    cfg->ram_budget_bytes = o->ram_budget;
    cfg->no_predict = o->no_predict;
    char msg[256];
    if (mg_config_check(cfg, msg, sizeof msg) < 0) {
        snprintf(err, err_len, "thresholds: %s", msg);
        return MG_ECONFIG;
    }
    return 0;
}

int guard_check_opts(const guard_opts *o, char *err, size_t err_len)
{
    mg_config cfg;
    int row;
    return fill_config(o, &cfg, &row, err, err_len);
}

/* The loop's and the watcher's contexts for cfg (the watcher's only when
 * o asks for one). False with *e set when one cannot be made. */
static bool make_contexts(const guard_opts *o, const mg_config *cfg, mg_ctx **ctx,
                          mg_ctx **wctx, int *e)
{
    *ctx = mg_create(cfg, e);
    *wctx = *ctx && !o->no_watcher ? mg_create(cfg, e) : NULL;
    if (*ctx && (o->no_watcher || *wctx)) return true;
    mg_destroy(*ctx);
    *ctx = NULL;
    return false;
}

static void watcher_start(guard *g)
{
    atomic_store(&g->quit, 0);
    if (g->wctx && pthread_create(&g->th, NULL, watcher, g) == 0) g->th_running = true;
}

static void watcher_stop(guard *g)
{
    if (!g->th_running) return;
    atomic_store(&g->quit, 1);
    pthread_join(g->th, NULL);
    g->th_running = false;
}

guard *guard_open(const guard_opts *o, char *err, size_t err_len)
{
    guard *g = calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    g->o = *o;
    mg_config cfg;
    if (fill_config(o, &cfg, &g->row, err, err_len) < 0) {
        free(g);
        return NULL;
    }
    int e;
    if (!make_contexts(o, &cfg, &g->ctx, &g->wctx, &e)) {
        snprintf(err, err_len, "cannot start the memory monitor: %s", mg_strerror(e));
        guard_close(g);
        return NULL;
    }
    g->stop = mg_stop_open(0, &e);
    if (!g->stop) {
        snprintf(err, err_len, "MEMGUARD_STOP_SIGNAL: %s (expected a signal number)",
                 mg_strerror(e));
        guard_close(g);
        return NULL;
    }
    g->txt = mg_text_opts_from_env(STDOUT_FILENO);
    watcher_start(g);
    return g;
}

void guard_close(guard *g)
{
    if (!g) return;
    watcher_stop(g);
    mg_stop_close(g->stop);
    mg_destroy(g->wctx);
    mg_destroy(g->ctx);
    free(g);
}

void guard_set_trainer_memory(guard *g, uint64_t allocated, uint64_t reserved)
{
    mg_set_trainer_memory(g->ctx, allocated, reserved);
}

void guard_note_save(guard *g, uint64_t save_ms)
{
    uint32_t lead = mg_predict_lead_ms(save_ms);
    mg_set_predict_lead_ms(g->ctx, lead);
    atomic_store(&g->lead_ms, lead); /* the watcher's context is its own */
}

void guard_print_start(guard *g)
{
    static char buf[8192];
    mg_snapshot s;
    mg_sample(g->ctx, &s);
    mg_format_system_check(&s, &g->txt, buf, sizeof buf);
    fputs(buf, stdout);
    fputc('\n', stdout);
    mg_format_banner(mg_ctx_config(g->ctx), &g->txt, buf, sizeof buf);
    fputs(buf, stdout);
    if (g->row)
        printf(g->txt.lang == MG_LANG_JA ? "（バッチサイズ %d の推奨閾値を使用: 表の %d の行）\n"
                                         : "(thresholds: the seed's row for batch %d, the "
                                           "nearest to batch %d)\n",
               g->row, g->o.batch);
    fflush(stdout);
}

bool guard_check(guard *g, guard_point where, long batch)
{
    if (mg_stop_requested(g->stop)) {
        g->requested = true;
        memset(&g->v, 0, sizeof g->v);
        return true;
    }
    const mg_config *cfg = mg_ctx_config(g->ctx);
    bool due = where == GP_EPOCH ||
               (where == GP_TRAIN && batch % (long)cfg->check_train_every == 0) ||
               (where == GP_EVAL && batch % (long)cfg->check_eval_every == 0) ||
               atomic_exchange(&g->flag, 0);
    if (!due) return false;
    mg_snapshot s;
    mg_sample(g->ctx, &s);
    mg_level level = mg_classify(cfg, &s, &g->st, &g->v);
    if (level == MG_LEVEL_CRITICAL) {
        /* Act on the first critical sample once a second read agrees. */
        mg_sample(g->ctx, &s);
        level = mg_classify(cfg, &s, &g->st, &g->v);
        if (level == MG_LEVEL_CRITICAL) return true;
    }
    if (level == MG_LEVEL_WARN) {
        uint64_t now = now_ms();
        if (!g->warned || now - g->last_warn_ms >= WARN_EVERY_MS) {
            char line[512];
            mg_format_warning(&g->v, &g->txt, where == GP_EPOCH ? -1 : batch, line, sizeof line);
            fputs(g->label, stdout);
            fputs(line, stdout);
            fflush(stdout);
            g->last_warn_ms = now;
            g->warned = true;
        }
    } else if (level == MG_LEVEL_SAFE) {
        g->warned = false;
    }
    return false;
}

/* The warning marker of the texts: the emoji, or "[!]" where it cannot
 * be shown. */
static const char *marker(const guard *g)
{
    return g->txt.emoji ? "\xE2\x9A\xA0\xEF\xB8\x8F" : "[!]";
}

static void print_requested(const guard *g, const char *origin)
{
    bool ja = g->txt.lang == MG_LANG_JA;
    if (origin[0])
        printf(ja ? "（%s の memguard run からの停止要求）\n"
                  : "(stop requested by memguard run on %s)\n", origin);
    else
        printf(ja ? "（memguard run からの停止要求）\n" : "(stop requested by memguard run)\n");
}

void guard_print_emergency(const guard *g, long epoch, const char *saved_path)
{
    static char banner[4096];
    char reason[300] = "", shown[320] = "";
    if (g->requested) {
        print_requested(g, "");
        if (mg_stop_reason(g->stop, reason, sizeof reason) > 0)
            snprintf(shown, sizeof shown, "%s %s", marker(g), reason);
        mg_format_emergency_text(shown, &g->txt, epoch, saved_path, banner, sizeof banner);
    } else {
        mg_format_emergency(&g->v, &g->txt, epoch, saved_path, banner, sizeof banner);
    }
    fputs(banner, stdout);
}

int guard_stop_reason(const guard *g, char *buf, size_t len)
{
    if (!g->requested) {
        guard_reason(g, buf, len);
        return GUARD_STOP_CRITICAL;
    }
    if (mg_stop_reason(g->stop, buf, len) <= 0) snprintf(buf, len, "stop requested by memguard run");
    return GUARD_STOP_REQUESTED;
}

void guard_print_emergency_from(const guard *g, long epoch, const char *saved_path,
                                const char *origin, int kind, const char *reason)
{
    static char banner[4096];
    char shown[900];
    if (kind == GUARD_STOP_REQUESTED) print_requested(g, origin);
    snprintf(shown, sizeof shown, "[%s] %s %s", origin, marker(g), reason);
    mg_format_emergency_text(shown, &g->txt, epoch, saved_path, banner, sizeof banner);
    fputs(banner, stdout);
}

void guard_set_label(guard *g, const char *label)
{
    snprintf(g->label, sizeof g->label, "%s", label);
}

int guard_acknowledge(const guard *g, const char *path)
{
    return mg_stop_acknowledge(g->stop, path);
}

const mg_config *guard_config(const guard *g) { return mg_ctx_config(g->ctx); }

bool guard_may_continue(guard *g)
{
    return !g->requested || mg_stop_may_continue(g->stop);
}

int guard_continue(guard *g, const char *path, const char *note)
{
    if (!g->requested) return 0;
    int rc = mg_stop_continue(g->stop, path, note);
    if (rc == 0) g->requested = false;
    return rc;
}

void guard_reason(const guard *g, char *buf, size_t len)
{
    char r[300] = "";
    if (g->requested) {
        mg_stop_reason(g->stop, r, sizeof r);
        snprintf(buf, len, "memguard run asked%s%s", r[0] ? ": " : "", r);
        return;
    }
    mg_text_opts plain = {MG_LANG_EN, false};
    mg_format_warning(&g->v, &plain, -1, r, sizeof r);
    const char *p = strncmp(r, "[!] ", 4) == 0 ? r + 4 : r;
    snprintf(buf, len, "%.*s", (int)strcspn(p, "\n"), p);
}

int guard_set_batch(guard *g, int batch)
{
    if (!g->row || table[table_row(batch)].batch == g->row) return 0;
    guard_opts o = g->o;
    o.batch = batch;
    mg_config cfg;
    int row, e;
    char err[320]; /* fill_config's "thresholds: " and a 256-byte message */
    mg_ctx *ctx, *wctx;
    if (fill_config(&o, &cfg, &row, err, sizeof err) < 0 || !make_contexts(&o, &cfg, &ctx, &wctx, &e))
        return MG_ECONFIG;
    watcher_stop(g);
    mg_destroy(g->wctx);
    mg_destroy(g->ctx);
    g->ctx = ctx;
    g->wctx = wctx;
    g->o = o;
    g->row = row;
    memset(&g->st, 0, sizeof g->st);
    unsigned lead = atomic_load(&g->lead_ms);
    if (lead) mg_set_predict_lead_ms(g->ctx, lead);
    watcher_start(g);
    printf(g->txt.lang == MG_LANG_JA ? "（閾値: バッチサイズ %d の推奨行: RAM 警告 %.0f%%、停止 %.0f%%）\n"
                                     : "(thresholds now the seed's row for batch %d: RAM warn "
                                       "%.0f%%, stop %.0f%%)\n",
           row, 100.0 * cfg.warn_ram_frac, 100.0 * cfg.stop_ram_frac);
    return 0;
}

