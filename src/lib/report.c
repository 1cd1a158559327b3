/* SPDX-License-Identifier: MIT */
/*
 * report.c: the seed's human texts (system check block, monitor banner,
 * warning line, emergency banner) in English or Japanese, with emoji or
 * plain ASCII markers, written into the caller's buffer.
 *
 * Every formatter follows snprintf's rule: it always NUL-terminates (when
 * buf_len > 0), writes what fits, and returns the length the whole text
 * needs, so a caller can size a buffer with a first call on (NULL, 0). It
 * never prints, allocates a buffer of its own or keeps state; the only thing
 * it reads besides its arguments is the environment, in
 * mg_text_opts_from_env(). The buffer handling is textbuf.c's (mg__tb); the
 * reason of a verdict (mg__format_reason) is written here once and shared
 * with report_json.c's "text".
 *
 * Units copy the seed (a Python script): "GB" is bytes / 1024^3, so a 12 GiB
 * RTX 3060 shows "12.0GB"; totals use one decimal, the used part of a warning
 * two ("91.2% (10.94GB/12.0GB)"). Numbers are formatted under the "C"
 * numeric locale of the calling thread, as Python's f-strings do, so a
 * German locale does not turn them into "91,2%".
 */
#include "internal.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RULE "============================================================\n"

/* The markers: emoji, or ASCII for consoles that cannot show them. */
#define E_WARN "\xE2\x9A\xA0\xEF\xB8\x8F" /* U+26A0 U+FE0F warning sign */
#define E_STOP "\xF0\x9F\x9A\xA8"         /* U+1F6A8 rotating light */
#define E_OK "\xE2\x9C\x85"               /* U+2705 check mark */
#define E_SHIELD "\xF0\x9F\x9B\xA1\xEF\xB8\x8F" /* U+1F6E1 U+FE0F shield */

static const double GIB = 1073741824.0;

static double gb(uint64_t bytes) { return (double)bytes / GIB; }

/* Decimals for a GB figure: the seed's one ("12.0GB"), or two below 1 GiB,
 * where one decimal would turn a 235 MB budget into "0.2GB". */
static int gb_dec(uint64_t bytes) { return bytes < (uint64_t)GIB ? 2 : 1; }

/* ---- options ---------------------------------------------------------------- */

static const char *first_env(const char *a, const char *b, const char *c)
{
    const char *names[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        const char *v = getenv(names[i]);
        if (v && *v) return v;
    }
    return NULL;
}

/* "ja_JP.UTF-8", "C.utf8", "en_US.UTF-8@euro": the codeset is matched
 * anywhere in the name, case-insensitively, with or without the dash. */
static bool names_utf8(const char *loc)
{
    for (const char *p = loc; *p; p++) {
        if (tolower((unsigned char)p[0]) != 'u') continue;
        if (tolower((unsigned char)p[1]) != 't') continue;
        if (tolower((unsigned char)p[2]) != 'f') continue;
        const char *q = p + 3;
        if (*q == '-') q++;
        if (*q == '8') return true;
    }
    return false;
}

mg_text_opts mg_text_opts_from_env(int fd)
{
    mg_text_opts t = {MG_LANG_EN, false};
    const char *msg = first_env("LC_ALL", "LC_MESSAGES", "LANG");
    if (msg && msg[0] == 'j' && msg[1] == 'a') t.lang = MG_LANG_JA;
    else if (!msg && mg__user_lang_ja()) t.lang = MG_LANG_JA;

    const char *ctype = first_env("LC_ALL", "LC_CTYPE", "LANG");
    t.emoji = ctype && names_utf8(ctype);
    /* The Linux virtual console has no emoji glyphs even in a UTF-8 locale
     * (it shows boxes), and "dumb" terminals may not be UTF-8 at all. Only a
     * terminal is asked: a pipe or file takes the bytes as they are. */
    if (t.emoji && fd >= 0 && isatty(fd)) {
        const char *term = getenv("TERM");
        if (term && (strcmp(term, "linux") == 0 || strcmp(term, "dumb") == 0))
            t.emoji = false;
    }
    return t;
}

/* NULL options are the seed's own: English with emoji; AUTO asks the
 * environment for the language only (the emoji choice is the caller's). */
static mg_text_opts opts_or_default(const mg_text_opts *t)
{
    mg_text_opts o = {MG_LANG_EN, true};
    if (t) o = *t;
    if (o.lang != MG_LANG_EN && o.lang != MG_LANG_JA)
        o.lang = mg_text_opts_from_env(-1).lang;
    return o;
}

/* ---- the warning reason ------------------------------------------------------ */

/* "GPU" for device 0, as in the seed; "GPU<i>" for the others. */
static void res_label(mg__tb *b, const mg_verdict *v)
{
    if (v->resource == MG_RES_RAM) mg__tb_printf(b, "RAM");
    else if (v->gpu_index == 0) mg__tb_printf(b, "GPU");
    else mg__tb_printf(b, "GPU%u", v->gpu_index);
}

/* "210MB/s", "1.5GB/s": a rate in the texts' units (1024-based). */
static void rate_text(mg__tb *b, double rate)
{
    double a = fabs(rate);
    if (a >= GIB) mg__tb_printf(b, "%.1fGB/s", rate / GIB);
    else mg__tb_printf(b, "%.0fMB/s", rate / (1024.0 * 1024.0));
}

/* "0.4s", "12s", "3min", "2h": a time to full, two digits at most. */
static void eta_text(mg__tb *b, double s)
{
    if (s < 10.0) mg__tb_printf(b, "%.1fs", s);
    else if (s < 120.0) mg__tb_printf(b, "%.0fs", s);
    else if (s < 7200.0) mg__tb_printf(b, "%.0fmin", s / 60.0);
    else mg__tb_printf(b, "%.0fh", s / 3600.0);
}

/* "full in ~12s at 210MB/s" / "約12sで満杯 (210MB/s)" */
static void full_in(mg__tb *b, bool ja, double seconds, double rate)
{
    if (ja) {
        mg__tb_printf(b, "約");
        eta_text(b, seconds);
        mg__tb_printf(b, "で満杯 (");
        rate_text(b, rate);
        mg__tb_printf(b, ")");
        return;
    }
    mg__tb_printf(b, "full in ~");
    eta_text(b, seconds);
    mg__tb_printf(b, " at ");
    rate_text(b, rate);
}

/*
 * The reason without marker, prefix or newline:
 *   "GPU usage high: 91.2% (10.94GB/12.0GB)"          (seed)
 *   "GPU使用率が危険: 91.2% (10.94GB/12.0GB)"          (seed)
 *   "RAM free below floor: 1.50GB free, floor 2.0GB"
 *   "RAM filling fast: 86.0% (20.64GB/24.0GB), full in ~0.4s at 8.0GB/s"
 * The warning line, the emergency banner and the JSON "text" all take it
 * from here, so the three cannot drift apart.
 */
void mg__format_reason(const mg_verdict *v, mg_lang lang, mg__tb *b)
{
    if (v->level == MG_LEVEL_SAFE || v->resource == MG_RES_NONE) return;
    bool ja = lang == MG_LANG_JA;
    res_label(b, v);
    if (v->by_floor) {
        uint64_t free_b = v->total_bytes > v->used_bytes
                              ? v->total_bytes - v->used_bytes : 0;
        if (ja)
            mg__tb_printf(b, "空き容量が下限未満: 空き %.2fGB, 下限 %.1fGB",
                          gb(free_b), gb(v->floor_bytes));
        else
            mg__tb_printf(b, " free below floor: %.2fGB free, floor %.1fGB",
                          gb(free_b), gb(v->floor_bytes));
        return;
    }
    if (v->by_trend) {
        mg__tb_printf(b, "%s: %.1f%% (%.2fGB/%.*fGB), ",
                      ja ? "が急増中" : " filling fast", v->value_frac * 100.0,
                      gb(v->used_bytes), gb_dec(v->total_bytes), gb(v->total_bytes));
        full_in(b, ja, v->seconds_to_full, v->rate_bytes_per_s);
        return;
    }
    mg__tb_printf(b, "%s: %.1f%% (%.2fGB/%.*fGB)",
                  ja ? "使用率が危険" : " usage high", v->value_frac * 100.0,
                  gb(v->used_bytes), gb_dec(v->total_bytes), gb(v->total_bytes));
}

int mg_format_warning(const mg_verdict *v, const mg_text_opts *t, long batch,
                      char *buf, size_t buf_len)
{
    if (!v || (!buf && buf_len)) return MG_EINVAL;
    mg_text_opts o = opts_or_default(t);
    mg__tb b;
    mg__tb_init(&b, buf, buf_len);
    if (v->level == MG_LEVEL_SAFE || v->resource == MG_RES_NONE)
        return mg__tb_done(&b);
    mg__num_locale l = mg__num_locale_begin();
    if (batch >= 0) mg__tb_printf(&b, "[Batch %ld] ", batch);
    mg__tb_printf(&b, "%s ", o.emoji ? E_WARN : "[!]");
    mg__format_reason(v, o.lang, &b);
    mg__tb_printf(&b, "\n");
    mg__num_locale_end(l);
    return mg__tb_done(&b);
}

/* ---- the emergency banner --------------------------------------------------- */

/* The banner around a reason line that `reason_line` writes (NULL: no
 * line), so the verdict and the text variant cannot drift apart. */
typedef void (*reason_writer)(const void *arg, const mg_text_opts *o, mg__tb *b);

static int emergency(reason_writer reason_line, const void *arg, const mg_text_opts *t,
                     long epoch, const char *saved_path, char *buf, size_t buf_len)
{
    if (!buf && buf_len) return MG_EINVAL;
    mg_text_opts o = opts_or_default(t);
    bool ja = o.lang == MG_LANG_JA;
    mg__tb b;
    mg__tb_init(&b, buf, buf_len);
    mg__num_locale l = mg__num_locale_begin();

    mg__tb_printf(&b, RULE "%s %s\n" RULE, o.emoji ? E_STOP : "[STOP]",
                  ja ? "緊急停止モード" : "Emergency stop");
    if (reason_line) {
        mg__tb_printf(&b, "%s", ja ? "理由: " : "Reason: ");
        reason_line(arg, &o, &b);
        mg__tb_printf(&b, "\n");
    }
    if (epoch >= 0)
        mg__tb_printf(&b, "%s%ld\n", ja ? "現在のエポック: " : "Current epoch: ",
                      epoch);
    if (saved_path)
        mg__tb_printf(&b, "%s %s%s\n", o.emoji ? E_OK : "[OK]",
                      ja ? "緊急保存完了: " : "Emergency save complete: ",
                      saved_path);
    else
        mg__tb_printf(&b, "%s\n", ja ? "緊急保存失敗: 保存されていません"
                                     : "Emergency save failed: not saved");
    /* Without a checkpoint the exit is not a safe one: say so. */
    if (saved_path)
        mg__tb_printf(&b, "\n%s\n" RULE, ja ? "安全に終了します..." : "Exiting safely...");
    else
        mg__tb_printf(&b, "\n%s\n" RULE, ja ? "チェックポイントなしで終了します"
                                          : "Exiting WITHOUT a checkpoint");
    mg__num_locale_end(l);
    return mg__tb_done(&b);
}

static void verdict_reason(const void *arg, const mg_text_opts *o, mg__tb *b)
{
    mg__tb_printf(b, "%s ", o->emoji ? E_WARN : "[!]");
    mg__format_reason(arg, o->lang, b);
}

static void text_reason(const void *arg, const mg_text_opts *o, mg__tb *b)
{
    (void)o;
    mg__tb_printf(b, "%s", (const char *)arg);
}

int mg_format_emergency(const mg_verdict *v, const mg_text_opts *t, long epoch,
                        const char *saved_path, char *buf, size_t buf_len)
{
    /* A stop asked for by someone else (a signal, a stop file) has no
     * memory verdict: the reason line is then left out, not invented. */
    bool has = v && v->level != MG_LEVEL_SAFE && v->resource != MG_RES_NONE;
    return emergency(has ? verdict_reason : NULL, v, t, epoch, saved_path, buf, buf_len);
}

int mg_format_emergency_text(const char *reason, const mg_text_opts *t, long epoch,
                             const char *saved_path, char *buf, size_t buf_len)
{
    bool has = reason && *reason;
    return emergency(has ? text_reason : NULL, reason, t, epoch, saved_path, buf, buf_len);
}

/* ---- the monitor banner ------------------------------------------------------- */

/* A threshold as the seed writes it: "90", "87.5" (at most one decimal). */
static void pct(char *out, size_t len, double frac)
{
    snprintf(out, len, "%.1f", frac * 100.0);
    size_t n = strlen(out);
    if (n >= 2 && strcmp(out + n - 2, ".0") == 0) out[n - 2] = '\0';
}

int mg_format_banner(const mg_config *cfg, const mg_text_opts *t, char *buf,
                     size_t buf_len)
{
    if (!buf && buf_len) return MG_EINVAL;
    mg_config c;
    mg__config_numbers(cfg, &c);
    cfg = &c;
    mg_text_opts o = opts_or_default(t);
    bool ja = o.lang == MG_LANG_JA;
    mg__tb b;
    mg__tb_init(&b, buf, buf_len);
    mg__num_locale l = mg__num_locale_begin();

    char wg[16], sg[16], wr[16], sr[16];
    pct(wg, sizeof wg, cfg->warn_gpu_frac);
    pct(sg, sizeof sg, cfg->stop_gpu_frac);
    pct(wr, sizeof wr, cfg->warn_ram_frac);
    pct(sr, sizeof sr, cfg->stop_ram_frac);
    unsigned tr = cfg->check_train_every, ev = cfg->check_eval_every;
    /* The seed puts two spaces after the shield: the emoji with its
     * variation selector is drawn two cells wide by most terminals. */
    const char *shield = o.emoji ? E_SHIELD "  " : "[memguard] ";

    if (ja) {
        mg__tb_printf(&b, RULE "%s自動メモリ監視機能 有効\n" RULE, shield);
        mg__tb_printf(&b, "監視閾値:\n");
        mg__tb_printf(&b, "  - GPU使用率: %s%% で警告, %s%% で緊急停止\n", wg, sg);
        mg__tb_printf(&b, "  - RAM使用率: %s%% で警告, %s%% で緊急停止\n", wr, sr);
        if (cfg->min_free_ram_bytes)
            mg__tb_printf(&b, "  - RAM空き容量: %.1fGB 未満で緊急停止\n",
                          gb(cfg->min_free_ram_bytes));
        if (cfg->min_free_gpu_bytes)
            mg__tb_printf(&b, "  - GPU空き容量: %.1fGB 未満で緊急停止 (デバイスごと)\n",
                          gb(cfg->min_free_gpu_bytes));
        if (cfg->ram_budget_bytes)
            mg__tb_printf(&b, "  - RAM予算: %.*fGB (プロセスツリーのPSS)\n",
                          gb_dec(cfg->ram_budget_bytes), gb(cfg->ram_budget_bytes));
        mg__tb_printf(&b, "チェック頻度:\n");
        mg__tb_printf(&b, "  - Train: %uバッチごと\n", tr);
        mg__tb_printf(&b, "  - Eval:  %uバッチごと\n", ev);
        mg__tb_printf(&b, "  - エポック開始時: 毎回\n");
        mg__tb_printf(&b, "緊急停止時の動作:\n");
        mg__tb_printf(&b, "  - 現在のモデルを emergency_epochN.pth として保存\n");
        mg__tb_printf(&b, "  - メモリをクリアして安全に終了\n");
    } else {
        mg__tb_printf(&b, RULE "%sAutomatic memory monitor enabled\n" RULE,
                      shield);
        mg__tb_printf(&b, "Thresholds:\n");
        mg__tb_printf(&b,
                      "  - GPU usage: warn at %s%%, emergency stop at %s%%\n",
                      wg, sg);
        mg__tb_printf(&b,
                      "  - RAM usage: warn at %s%%, emergency stop at %s%%\n",
                      wr, sr);
        if (cfg->min_free_ram_bytes)
            mg__tb_printf(&b, "  - RAM free: emergency stop below %.1fGB\n",
                          gb(cfg->min_free_ram_bytes));
        if (cfg->min_free_gpu_bytes)
            mg__tb_printf(
                &b, "  - GPU free: emergency stop below %.1fGB (per device)\n",
                gb(cfg->min_free_gpu_bytes));
        if (cfg->ram_budget_bytes)
            mg__tb_printf(&b, "  - RAM budget: %.*fGB (process tree PSS)\n",
                          gb_dec(cfg->ram_budget_bytes), gb(cfg->ram_budget_bytes));
        mg__tb_printf(&b, "Check frequency:\n");
        mg__tb_printf(&b, "  - Train: every %u batch%s\n", tr,
                      tr == 1 ? "" : "es");
        mg__tb_printf(&b, "  - Eval:  every %u batch%s\n", ev,
                      ev == 1 ? "" : "es");
        mg__tb_printf(&b, "  - At every epoch start\n");
        mg__tb_printf(&b, "On emergency stop:\n");
        mg__tb_printf(&b,
                      "  - Save the current model as emergency_epochN.pth\n");
        mg__tb_printf(&b, "  - Free memory and exit safely\n");
    }
    mg__tb_printf(&b, RULE);
    mg__num_locale_end(l);
    return mg__tb_done(&b);
}

/* ---- the system check block ----------------------------------------------------- */

/* Why there is no GPU line, in the words of the state. */
static const char *gpu_why(const mg_snapshot *s)
{
    switch (s->gpu_state) {
    case MG_GPU_OK: return "no visible device";
    case MG_GPU_DISABLED: return "disabled";
    case MG_GPU_NO_LIBRARY: return "NVML not found";
    case MG_GPU_NO_DRIVER: return "no NVIDIA driver";
    case MG_GPU_NO_DEVICE: return "no device";
    case MG_GPU_ERROR: return "query failed";
    }
    return "unknown";
}

/* "RAM growth: 210MB/s, full in ~12s (budget)" when growing, "RAM growth:
 * none" when not, nothing when not measured (a single sample). */
static void fill_line(mg__tb *b, const char *label, const mg_fill *f, const char *which)
{
    if (!f->known) return;
    mg__tb_printf(b, "%s growth: ", label);
    if (!(f->rate_bytes_per_s > 0.0) || !isfinite(f->seconds_to_full)) {
        mg__tb_printf(b, "none\n");
        return;
    }
    rate_text(b, f->rate_bytes_per_s);
    mg__tb_printf(b, ", full in ~");
    eta_text(b, f->seconds_to_full);
    if (which) mg__tb_printf(b, " (%s)", which);
    mg__tb_printf(b, "\n");
}

/* The fixed-size path fields are read with a bound, in case a probe ever
 * fills one to the last byte. */
static int fieldlen(const char *s, size_t cap)
{
    return (int)strnlen(s, cap);
}

/* "Process tree: pid 4242, 5 processes, PSS 1.02GB (RSS sum 3.1GB)": the
 * figure judged against a budget first and named, the RSS sum beside it
 * when PSS was read (memguard.h, mg_proctree, says when). */
static void format_tree(mg__tb *b, const mg_proctree *t)
{
    mg__tb_printf(b, "Process tree: %s %d, %u process%s, ",
                  t->descendants_only ? "below pid" : "pid", t->pid, t->nprocs,
                  t->nprocs == 1 ? "" : "es");
    if (t->used_estimated) {
        mg__tb_printf(b, "PSS about %.*fGB (RSS sum %.*fGB)\n", gb_dec(t->used_bytes),
                      gb(t->used_bytes), gb_dec(t->rss_bytes), gb(t->rss_bytes));
        return;
    }
    if (!t->pss_known) {
        mg__tb_printf(b, "RSS %.*fGB\n", gb_dec(t->rss_bytes), gb(t->rss_bytes));
        return;
    }
    mg__tb_printf(b, "PSS %.*fGB (RSS sum %.*fGB", gb_dec(t->pss_bytes), gb(t->pss_bytes),
                  gb_dec(t->rss_bytes), gb(t->rss_bytes));
    if (t->pss_unread)
        mg__tb_printf(b, "; %u unreadable, counted at RSS", t->pss_unread);
    mg__tb_printf(b, ")\n");
}

/*
 * The block is English in both languages: the seed's Japanese document
 * shows it untranslated (it is what the Python script printed), and its
 * lines are what people grep logs for.
 */
int mg_format_system_check(const mg_snapshot *snap, const mg_text_opts *t,
                           char *buf, size_t buf_len)
{
    (void)t;
    if (!snap || (!buf && buf_len)) return MG_EINVAL;
    mg__tb b;
    mg__tb_init(&b, buf, buf_len);
    mg__num_locale l = mg__num_locale_begin();

    mg__tb_printf(&b, RULE "System Resource Check\n" RULE);

    const mg_ram *r = &snap->ram;
    if (r->known) {
        mg__tb_printf(&b, "RAM: %.1fGB / %.1fGB (%.0f%%)\n", gb(r->used_bytes),
                      gb(r->total_bytes), r->used_frac * 100.0);
        switch (r->source) {
        case MG_RAM_SOURCE_CGROUP:
            if (snap->cgroup.known && snap->cgroup.version == 0)
                mg__tb_printf(&b, "RAM limit: job object limit\n");
            else if (snap->cgroup.known)
                mg__tb_printf(&b, "RAM limit: cgroup v%d limit (%.*s)\n",
                              snap->cgroup.version,
                              fieldlen(snap->cgroup.limit_path,
                                       sizeof snap->cgroup.limit_path),
                              snap->cgroup.limit_path);
            else
                mg__tb_printf(&b, "RAM limit: cgroup limit\n");
            break;
        case MG_RAM_SOURCE_BUDGET:
            mg__tb_printf(&b, "RAM limit: budget %.1fGB, process tree %s\n",
                          gb(r->total_bytes),
                          snap->tree.pss_known || snap->tree.used_estimated ? "PSS" : "RSS");
            break;
        case MG_RAM_SOURCE_COMMIT:
            mg__tb_printf(&b, "RAM limit: commit limit (RAM + page files)\n");
            break;
        case MG_RAM_SOURCE_MEMINFO:
        default:
            mg__tb_printf(&b, "RAM limit: machine (" MG__MACHINE_RAM_SOURCE ")\n");
            break;
        }
        fill_line(&b, "RAM", &r->fill, r->nlimits > 1 ? mg_ram_source_name(r->fill_source)
                                                         : NULL);
    } else {
        mg__tb_printf(&b, "RAM: unknown (not checked)\n");
    }

    const mg_swap *sw = &snap->swap;
    if (sw->known) {
        if (sw->total_bytes == 0) {
            mg__tb_printf(&b, "Swap: none\n");
        } else {
            uint64_t used = sw->total_bytes > sw->free_bytes
                                ? sw->total_bytes - sw->free_bytes : 0;
            mg__tb_printf(&b, "Swap: %.1fGB / %.1fGB (%.0f%%)\n", gb(used),
                          gb(sw->total_bytes),
                          (double)used * 100.0 / (double)sw->total_bytes);
        }
    }

    if (r->commit_known && r->commit_limit_bytes > 0)
        mg__tb_printf(&b, "Commit: %.1fGB / %.1fGB (%.0f%%)\n", gb(r->commit_used_bytes),
                      gb(r->commit_limit_bytes),
                      (double)r->commit_used_bytes * 100.0 / (double)r->commit_limit_bytes);

    const mg_cgroup *cg = &snap->cgroup;
    if (cg->known && cg->version == 0) {
        mg__tb_printf(&b, "Container: job object, ");
    } else if (cg->known) {
        mg__tb_printf(&b, "Container: cgroup v%d %.*s, ", cg->version,
                      fieldlen(cg->path, sizeof cg->path), cg->path);
    }
    if (cg->known) {
        if (cg->has_limit) {
            mg__tb_printf(&b, "limit %.1fGB", gb(cg->limit_bytes));
            int lp = fieldlen(cg->limit_path, sizeof cg->limit_path);
            /* Name the limiting cgroup only when it is an ancestor. */
            if (lp > 0 && strncmp(cg->limit_path, cg->path,
                                  sizeof cg->path) != 0)
                mg__tb_printf(&b, " (set by %.*s)", lp, cg->limit_path);
        } else {
            mg__tb_printf(&b, "no limit");
        }
        if (cg->usage_known)
            mg__tb_printf(&b, ", usage %.1fGB", gb(cg->usage_bytes));
        mg__tb_printf(&b, "\n");
    }

    if (snap->tree.known) format_tree(&b, &snap->tree);

    if (snap->psi.known)
        mg__tb_printf(&b, "PSI memory: some %.2f%%, full %.2f%% (avg10)\n",
                      snap->psi.some_avg10, snap->psi.full_avg10);

    unsigned n = snap->gpu_count < MG_MAX_GPUS ? snap->gpu_count : MG_MAX_GPUS;
    for (unsigned i = 0; i < n; i++) {
        const mg_gpu *g = &snap->gpus[i];
        int nl = fieldlen(g->name, sizeof g->name);
        if (n == 1) mg__tb_printf(&b, "GPU: %.*s\n", nl, g->name);
        else mg__tb_printf(&b, "GPU %u: %.*s\n", g->index, nl, g->name);
        /* The trainer's figures are its own process's on its current
         * device; they are shown once, under the first device. */
        if (snap->trainer_known && i == 0) {
            mg__tb_printf(&b, "GPU Memory: %.*fGB allocated\n",
                          gb_dec(snap->trainer_allocated_bytes),
                          gb(snap->trainer_allocated_bytes));
            mg__tb_printf(&b, "GPU Memory: %.*fGB reserved\n",
                          gb_dec(snap->trainer_reserved_bytes),
                          gb(snap->trainer_reserved_bytes));
        } else if (g->known) {
            uint64_t used = g->total_bytes > g->free_bytes
                                ? g->total_bytes - g->free_bytes : 0;
            mg__tb_printf(&b, "GPU Memory: %.1fGB used (%.0f%%)\n", gb(used),
                          g->used_frac * 100.0);
        }
        if (g->known) {
            mg__tb_printf(&b, "GPU Total: %.1fGB\n", gb(g->total_bytes));
            fill_line(&b, "GPU Memory", &g->fill, NULL);
        } else {
            mg__tb_printf(&b, "GPU Memory: unknown\n");
        }
    }
    if (n == 0) {
        mg__tb_printf(&b, "GPU: none (%s)\n", gpu_why(snap));
        if (snap->trainer_known)
            mg__tb_printf(
                &b, "Trainer memory: %.*fGB allocated / %.*fGB reserved\n",
                gb_dec(snap->trainer_allocated_bytes), gb(snap->trainer_allocated_bytes),
                gb_dec(snap->trainer_reserved_bytes), gb(snap->trainer_reserved_bytes));
    }

    mg__tb_printf(&b, RULE);
    mg__num_locale_end(l);
    return mg__tb_done(&b);
}
