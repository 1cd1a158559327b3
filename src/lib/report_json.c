/* SPDX-License-Identifier: MIT */
/*
 * report_json.c: one snapshot and its verdict as one line of JSON, for
 * `memguard check --json`, log shippers and the bindings.
 *
 * The schema is fixed (docs/memguard.1.md): every key is always present, and
 * a figure that was not read is null, never 0, so a consumer cannot mistake
 * "unknown" for "empty". Strings are escaped per RFC 8259 and invalid UTF-8
 * is replaced by U+FFFD so the line always parses; non-finite doubles become
 * null. Numbers are written under the "C" numeric locale of the calling
 * thread. Like report.c it follows snprintf's return rule and neither prints
 * nor keeps state: the buffer handling is textbuf.c's builder (mg__tb), and
 * only what is JSON's own (string escaping, doubles, nulls) is here.
 */
#include "internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static void jw_u64(mg__tb *w, uint64_t v) { mg__tb_printf(w, "%" PRIu64, v); }

/* ,"key":v, or ,"key":null when the reading is not known. */
static void jw_known_u64(mg__tb *w, const char *key, bool known, uint64_t v)
{
    mg__tb_printf(w, ",\"%s\":", key);
    if (known) jw_u64(w, v);
    else mg__tb_printf(w, "null");
}

/* %.6g keeps fractions readable (0.911667) and is always valid JSON for a
 * finite value ("1e+06" included); NaN and infinities have no JSON form. */
static void jw_double(mg__tb *w, double v)
{
    if (isfinite(v)) mg__tb_printf(w, "%.6g", v);
    else mg__tb_printf(w, "null");
}

/* Length of the valid UTF-8 sequence at s (at most `left` bytes), 0 if the
 * bytes there are not one: stray continuation bytes, overlong forms,
 * surrogates and code points above U+10FFFF are all refused. */
static size_t utf8_seq(const unsigned char *s, size_t left)
{
    unsigned c = s[0];
    size_t n;
    uint32_t cp, min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (n > left) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

/* The JSON form of the character at p[0..left), at most 6 bytes into out
 * (not terminated): an escape, the bytes of a valid UTF-8 sequence, or
 * \ufffd for a byte that starts none. Sets *used to the input bytes
 * consumed. */
static size_t json_unit(const unsigned char *p, size_t left, char out[6], size_t *used)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char c = p[0];
    *used = 1;
    if (c == '"' || c == '\\') {
        out[0] = '\\';
        out[1] = (char)c;
        return 2;
    }
    if (c < 0x20 || c == 0x7F) {
        memcpy(out, "\\u00", 4);
        out[4] = hex[c >> 4];
        out[5] = hex[c & 15];
        return 6;
    }
    size_t k = utf8_seq(p, left);
    if (k == 0) {
        memcpy(out, "\\ufffd", 6);
        return 6;
    }
    memcpy(out, p, k);
    *used = k;
    return k;
}

/* A JSON string from at most `cap` bytes of s (the fixed-size snapshot
 * fields need not be terminated). */
static void jw_str(mg__tb *w, const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    const unsigned char *p = (const unsigned char *)s;
    mg__tb_put(w, "\"", 1);
    for (size_t i = 0, used; i < n; i += used) {
        char unit[6];
        mg__tb_put(w, unit, json_unit(p + i, n - i, unit, &used));
    }
    mg__tb_put(w, "\"", 1);
}

int mg_json_quote(const char *s, char *buf, size_t buf_len)
{
    if (!s || !buf || buf_len < 3) return MG_EINVAL;
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), o = 0;
    buf[o++] = '"';
    int rc = 0;
    for (size_t i = 0, used; i < n; i += used) {
        char unit[6];
        size_t k = json_unit(p + i, n - i, unit, &used);
        if (o + k + 2 > buf_len) { /* the closing quote and the NUL must fit */
            rc = MG_ENOBUFS;
            break;
        }
        memcpy(buf + o, unit, k);
        o += k;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return rc;
}

static void jw_cstr(mg__tb *w, const char *s) { jw_str(w, s, strlen(s)); }

static const char *gpu_state_name(mg_gpu_state s)
{
    switch (s) {
    case MG_GPU_OK: return "ok";
    case MG_GPU_DISABLED: return "disabled";
    case MG_GPU_NO_LIBRARY: return "no_library";
    case MG_GPU_NO_DRIVER: return "no_driver";
    case MG_GPU_NO_DEVICE: return "no_device";
    case MG_GPU_ERROR: return "error";
    }
    return "error";
}


/* A byte count that is meaningful only when set (the floors, the budget):
 * 0 means "none", which JSON says with null. */
static void jw_u64_or_null(mg__tb *w, uint64_t v)
{
    if (v) jw_u64(w, v);
    else mg__tb_printf(w, "null");
}

/* {"rate_bytes_per_s", "seconds_to_full"} (null when not filling), or null
 * when the growth was not measured. */
static void fill_obj(mg__tb *w, const mg_fill *f)
{
    if (!f->known) {
        mg__tb_printf(w, "null");
        return;
    }
    mg__tb_printf(w, "{\"rate_bytes_per_s\":");
    jw_double(w, f->rate_bytes_per_s);
    mg__tb_printf(w, ",\"seconds_to_full\":");
    if (isfinite(f->seconds_to_full)) jw_double(w, f->seconds_to_full);
    else mg__tb_printf(w, "null");
    mg__tb_printf(w, "}");
}

static void reason_obj(mg__tb *w, const mg_verdict *v)
{
    if (v->level == MG_LEVEL_SAFE || v->resource == MG_RES_NONE) {
        mg__tb_printf(w, "null");
        return;
    }
    mg__tb_printf(w, "{\"resource\":\"%s\",\"gpu_index\":",
                  v->resource == MG_RES_RAM ? "ram" : "gpu");
    if (v->resource == MG_RES_GPU) mg__tb_printf(w, "%u", v->gpu_index);
    else mg__tb_printf(w, "null");
    mg__tb_printf(w, ",\"value_frac\":");
    jw_double(w, v->value_frac);
    mg__tb_printf(w, ",\"threshold_frac\":");
    jw_double(w, v->threshold_frac);
    mg__tb_printf(w, ",\"by_floor\":%s,\"floor_bytes\":",
                  v->by_floor ? "true" : "false");
    if (v->by_floor) jw_u64(w, v->floor_bytes);
    else mg__tb_printf(w, "null");
    mg__tb_printf(w, ",\"used_bytes\":");
    jw_u64(w, v->used_bytes);
    mg__tb_printf(w, ",\"total_bytes\":");
    jw_u64(w, v->total_bytes);
    /* The growth that made it critical ahead of the stop threshold; null
     * for a verdict by threshold or floor. */
    mg__tb_printf(w, ",\"by_trend\":%s,\"rate_bytes_per_s\":",
                  v->by_trend ? "true" : "false");
    if (v->by_trend) jw_double(w, v->rate_bytes_per_s);
    else mg__tb_printf(w, "null");
    mg__tb_printf(w, ",\"seconds_to_full\":");
    if (v->by_trend) jw_double(w, v->seconds_to_full);
    else mg__tb_printf(w, "null");

    /* The same words as the warning line (report.c writes them for both),
     * in English whatever the locale, for log shippers that grep them. They
     * are rendered first and then escaped: a GPU label is ASCII today, but
     * the text must stay a valid JSON string whatever it holds. */
    char text[256];
    mg__tb t;
    mg__tb_init(&t, text, sizeof text);
    mg__format_reason(v, MG_LANG_EN, &t);
    mg__tb_printf(w, ",\"text\":");
    jw_cstr(w, text);
    mg__tb_printf(w, "}");
}

/* {"pid", "descendants_only", "nprocs", "rss_bytes", "pss_bytes",
 * "pss_unread", "used_bytes", "used_estimated"}: the PSS pair is null when
 * PSS was not read in this sample, and used_bytes is the figure judged
 * against a budget (an estimate from the last PSS when used_estimated). */
static void process_tree_obj(mg__tb *w, const mg_proctree *t)
{
    mg__tb_printf(w, "{\"pid\":%d,\"descendants_only\":%s,\"nprocs\":%u,"
                     "\"rss_bytes\":%" PRIu64 ",\"pss_bytes\":",
                  t->pid, t->descendants_only ? "true" : "false", t->nprocs, t->rss_bytes);
    if (t->pss_known)
        mg__tb_printf(w, "%" PRIu64 ",\"pss_unread\":%u", t->pss_bytes, t->pss_unread);
    else
        mg__tb_printf(w, "null,\"pss_unread\":null");
    mg__tb_printf(w, ",\"used_bytes\":%" PRIu64 ",\"used_estimated\":%s}", t->used_bytes,
                  t->used_estimated ? "true" : "false");
}

int mg_format_json(const mg_config *cfg, const mg_snapshot *snap,
                   const mg_verdict *v, char *buf, size_t buf_len)
{
    if (!snap || (!buf && buf_len)) return MG_EINVAL;
    mg_config c;
    mg__config_numbers(cfg, &c); /* thresholds print as they are judged */
    cfg = &c;
    mg_verdict own;
    if (!v) {
        /* No verdict given: judge statelessly, as `check` would. */
        mg_classify(cfg, snap, NULL, &own);
        v = &own;
    }

    mg__tb w;
    mg__tb_init(&w, buf, buf_len);
    mg__num_locale l = mg__num_locale_begin();

    mg__tb_printf(&w, "{\"time_ms\":%" PRIu64 ",\"sample_us\":%" PRIu64
                      ",\"sample_backlog_us\":%" PRIu64 ",\"level\":\"%s\",\"reason\":",
                  snap->time_ms, snap->sample_us, snap->sample_backlog_us,
                  mg_level_name(v->level));
    reason_obj(&w, v);

    mg__tb_printf(&w, ",\"unknown\":[");
    bool first = true;
    if (v->unknown & MG_UNKNOWN_RAM) {
        mg__tb_printf(&w, "\"ram\"");
        first = false;
    }
    if (v->unknown & MG_UNKNOWN_GPU)
        mg__tb_printf(&w, "%s\"gpu\"", first ? "" : ",");
    mg__tb_printf(&w, "]");

    const mg_ram *r = &snap->ram;
    mg__tb_printf(&w, ",\"ram\":");
    if (r->known) {
        mg__tb_printf(&w, "{\"total_bytes\":%" PRIu64
                          ",\"available_bytes\":%" PRIu64
                          ",\"used_bytes\":%" PRIu64 ",\"used_frac\":",
                      r->total_bytes, r->available_bytes, r->used_bytes);
        jw_double(&w, r->used_frac);
        mg__tb_printf(&w, ",\"source\":\"%s\"", mg_ram_source_name(r->source));
        jw_known_u64(&w, "mem_total_bytes", r->meminfo_known, r->mem_total_bytes);
        jw_known_u64(&w, "mem_available_bytes", r->meminfo_known, r->mem_available_bytes);
        jw_known_u64(&w, "commit_used_bytes", r->commit_known, r->commit_used_bytes);
        jw_known_u64(&w, "commit_limit_bytes", r->commit_known, r->commit_limit_bytes);
        /* Every limit that was weighed, not only the one that decided. */
        mg__tb_printf(&w, ",\"limits\":[");
        for (unsigned i = 0; i < r->nlimits && i < 4; i++)
            mg__tb_printf(&w, "%s{\"source\":\"%s\",\"total_bytes\":%" PRIu64
                              ",\"used_bytes\":%" PRIu64 "}",
                          i ? "," : "", mg_ram_source_name(r->limits[i].source),
                          r->limits[i].total_bytes, r->limits[i].used_bytes);
        mg__tb_printf(&w, "],\"fill\":");
        fill_obj(&w, &r->fill);
        if (r->fill.known)
            mg__tb_printf(&w, ",\"fill_source\":\"%s\"", mg_ram_source_name(r->fill_source));
        mg__tb_printf(&w, "}");
    } else {
        mg__tb_printf(&w, "null");
    }

    mg__tb_printf(&w, ",\"swap\":");
    if (snap->swap.known)
        mg__tb_printf(&w, "{\"total_bytes\":%" PRIu64
                          ",\"free_bytes\":%" PRIu64 "}",
                      snap->swap.total_bytes, snap->swap.free_bytes);
    else
        mg__tb_printf(&w, "null");

    const mg_cgroup *cg = &snap->cgroup;
    mg__tb_printf(&w, ",\"cgroup\":");
    if (cg->known) {
        mg__tb_printf(&w, "{\"version\":%d,\"path\":", cg->version);
        jw_str(&w, cg->path, sizeof cg->path);
        jw_known_u64(&w, "limit_bytes", cg->has_limit, cg->limit_bytes);
        mg__tb_printf(&w, ",\"limit_path\":");
        if (cg->has_limit) jw_str(&w, cg->limit_path, sizeof cg->limit_path);
        else mg__tb_printf(&w, "null");
        jw_known_u64(&w, "usage_bytes", cg->usage_known, cg->usage_bytes);
        jw_known_u64(&w, "inactive_file_bytes", cg->usage_known, cg->inactive_file_bytes);
        mg__tb_printf(&w, "}");
    } else {
        mg__tb_printf(&w, "null");
    }

    mg__tb_printf(&w, ",\"process_tree\":");
    if (snap->tree.known) process_tree_obj(&w, &snap->tree);
    else mg__tb_printf(&w, "null");

    mg__tb_printf(&w, ",\"psi\":");
    if (snap->psi.known) {
        mg__tb_printf(&w, "{\"some_avg10\":");
        jw_double(&w, snap->psi.some_avg10);
        mg__tb_printf(&w, ",\"full_avg10\":");
        jw_double(&w, snap->psi.full_avg10);
        mg__tb_printf(&w, "}");
    } else {
        mg__tb_printf(&w, "null");
    }

    mg__tb_printf(&w, ",\"gpu_state\":\"%s\",\"gpus\":[",
                  gpu_state_name(snap->gpu_state));
    unsigned n = snap->gpu_count < MG_MAX_GPUS ? snap->gpu_count : MG_MAX_GPUS;
    for (unsigned i = 0; i < n; i++) {
        const mg_gpu *g = &snap->gpus[i];
        mg__tb_printf(&w, "%s{\"index\":%u,\"name\":", i ? "," : "", g->index);
        jw_str(&w, g->name, sizeof g->name);
        mg__tb_printf(&w, ",\"uuid\":");
        jw_str(&w, g->uuid, sizeof g->uuid);
        if (g->known) {
            mg__tb_printf(&w, ",\"total_bytes\":%" PRIu64
                              ",\"free_bytes\":%" PRIu64
                              ",\"reserved_bytes\":%" PRIu64 ",\"used_frac\":",
                          g->total_bytes, g->free_bytes, g->reserved_bytes);
            jw_double(&w, g->used_frac);
            mg__tb_printf(&w, ",\"fill\":");
            fill_obj(&w, &g->fill);
        } else {
            mg__tb_printf(&w, ",\"total_bytes\":null,\"free_bytes\":null"
                              ",\"reserved_bytes\":null,\"used_frac\":null,\"fill\":null");
        }
        mg__tb_printf(&w, "}");
    }
    mg__tb_printf(&w, "]");

    mg__tb_printf(&w, ",\"trainer\":");
    if (snap->trainer_known)
        mg__tb_printf(&w, "{\"allocated_bytes\":%" PRIu64
                          ",\"reserved_bytes\":%" PRIu64 "}",
                      snap->trainer_allocated_bytes,
                      snap->trainer_reserved_bytes);
    else
        mg__tb_printf(&w, "null");

    mg__tb_printf(&w, ",\"thresholds\":{\"warn_gpu_frac\":");
    jw_double(&w, cfg->warn_gpu_frac);
    mg__tb_printf(&w, ",\"stop_gpu_frac\":");
    jw_double(&w, cfg->stop_gpu_frac);
    mg__tb_printf(&w, ",\"warn_ram_frac\":");
    jw_double(&w, cfg->warn_ram_frac);
    mg__tb_printf(&w, ",\"stop_ram_frac\":");
    jw_double(&w, cfg->stop_ram_frac);
    mg__tb_printf(&w, ",\"min_free_ram_bytes\":");
    jw_u64_or_null(&w, cfg->min_free_ram_bytes);
    mg__tb_printf(&w, ",\"min_free_gpu_bytes\":");
    jw_u64_or_null(&w, cfg->min_free_gpu_bytes);
    mg__tb_printf(&w, ",\"ram_budget_bytes\":");
    jw_u64_or_null(&w, cfg->ram_budget_bytes);
    mg__tb_printf(&w, ",\"predict_lead_ms\":");
    if (cfg->no_predict) mg__tb_printf(&w, "null");
    else mg__tb_printf(&w, "%u", (unsigned)cfg->predict_lead_ms);
    mg__tb_printf(&w, "}}\n");

    mg__num_locale_end(l);
    return mg__tb_done(&w);
}
