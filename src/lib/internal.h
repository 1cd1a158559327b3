/* SPDX-License-Identifier: MIT */
/*
 * internal.h: what the library's files share and the outside never sees.
 *
 * Names here are mg__* (two underscores). It declares the logger, the small
 * file helpers every probe uses, the text builder and numeric-locale switch
 * the formatters and parsers share, the reason text of a verdict, the Linux
 * probe (RAM, swap, cgroup, process tree, PSI) and the GPU backend vtable.
 * It holds no definitions of state: each module owns its own struct and
 * allocates it.
 */
#ifndef MG_INTERNAL_H
#define MG_INTERNAL_H

#include "memguard.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* mingw-w64 builds with its own (GNU) printf family (__USE_MINGW_ANSI_STDIO),
 * whose archetype is gnu_printf there. */
#if defined(__MINGW32__)
#define MG_PRINTF(fmt, args) __attribute__((format(gnu_printf, fmt, args)))
#elif defined(__GNUC__)
#define MG_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define MG_PRINTF(fmt, args)
#endif

/* ---- config.c ---------------------------------------------------------- */

/* The numeric part of mg_config_resolve(): *out = *in (a zero config when
 * NULL) with every zero threshold, cadence, interval and rate at its
 * default. No environment is read, so the pure modules (policy, reports)
 * can call it on whatever config they are given. */
void mg__config_numbers(const mg_config *in, mg_config *out);

/* ---- ctx.c ------------------------------------------------------------- */

/* One sample whose process-tree figure is decided for the thresholds of
 * `judge` (mg_sample: the context's own). */
int mg__sample_for(mg_ctx *ctx, const mg_config *judge, mg_snapshot *out);

/* ---- trend.c ----------------------------------------------------------- */

/* The recent points of one figure (a RAM limit or a GPU), oldest first in a
 * ring: what mg_fill is measured from. */
#define MG__TREND_POINTS 8u
#define MG__TREND_MAX_AGE_MS 5000u
typedef struct mg__series {
    uint64_t t_ms[MG__TREND_POINTS];
    uint64_t used[MG__TREND_POINTS];
    unsigned n, head; /* head: the slot the next point goes to */
    int kind;         /* what the points measure; a new kind starts over */
} mg__series;

/* One series per RAM limit source and per GPU slot. Zero-initialised is
 * empty. */
#define MG__RAM_SOURCES 4u /* mg_ram_source: machine, cgroup, budget, commit */
typedef struct mg__trend {
    mg__series ram[MG__RAM_SOURCES];
    mg__series gpu[MG_MAX_GPUS];
} mg__trend;

/* Adds this sample's figures to the series and fills snap->ram.fill,
 * fill_source and every snap->gpus[i].fill from them. Pure apart from
 * *tr: the time is snap->time_ms. */
void mg__trend_note(mg__trend *tr, mg_snapshot *snap);

/* ---- policy.c ---------------------------------------------------------- */

/* Sampling's share of one core, as a divisor (a tenth), and the burst of
 * sampling work allowed above it: the leaky bucket of
 * mg_snapshot.sample_backlog_us (ctx.c fills it, mg_next_poll_ms obeys). */
#define MG__SAMPLE_SHARE_DIV 10u
#define MG__SAMPLE_BURST_US 100000u

/* True when a tree figure of at most `used_upper` bytes against `budget`
 * (0 = none) is judged safe whatever its exact value: below warn_ram_frac
 * minus hysteresis_frac and clear of min_free_ram_bytes. Then the RSS sum
 * (an upper bound) settles it and PSS need not be read. */
bool mg__budget_proven_safe(const mg_config *cfg, uint64_t used_upper, uint64_t budget);
/* stop_text.c: the reason in a stop file's NUL-terminated text, copied
 * into buf (truncated to fit): its length, 0 when the header is wrong or
 * there is none. */
int mg__stop_reason_text(const char *text, char *buf, size_t buf_len);
/* Writes the acknowledgement at `ack` (the checkpoint's absolute path and
 * a newline) through mg_atomic: 0 or its error. */
int mg__stop_ack_write(const char *ack, const char *checkpoint);
/* The request line of a stop file's text ("request N memory|stop", the
 * third): N (0 when there is none: an old memguard run, or not ours), and
 * in *memory whether it is a memory request a trainer may continue from. */
uint64_t mg__stop_request_id(const char *text, bool *memory);
/* mg_stop_continue's portable half: answers the memory request in the stop
 * file's `text` by writing the "continuing" answer at `cont` (memguard.h,
 * MG_CONTINUE_FILE_HEADER) through mg_atomic, and sets *answered. 0,
 * MG_EINVAL (no such request, no `cont`, a checkpoint path or note that is
 * not one line, or more than 8 KiB), or mg_atomic's error. */
int mg__stop_continue(const char *cont, const char *text, const char *checkpoint,
                      const char *note, uint64_t *answered);

/* Whether `used` of the budget is below stop_ram_frac and clear of the
 * floor: neither critical nor a hard limit (which is never below stop). */
bool mg__budget_below_stop(const mg_config *cfg, uint64_t used, uint64_t budget);

/* ---- log.c ------------------------------------------------------------- */

typedef struct mg__log {
    mg_log_fn fn;       /* NULL: drop everything */
    void *user;
    mg_log_level level; /* most verbose level delivered */
} mg__log;

/* Formats and delivers one line when `level` passes the filter. The level is
 * checked before the message is built, so debug lines cost nothing when off. */
void mg__logf(const mg__log *log, mg_log_level level, const char *fmt, ...)
    MG_PRINTF(3, 4);

/* ---- util.c ------------------------------------------------------------ */

/* Milliseconds and microseconds on a monotonic clock (posix/files.c,
 * win/clock.c). */
uint64_t mg__now_ms(void);
uint64_t mg__now_us(void);

/* snprintf into a fixed buffer; returns MG_ENOBUFS when it did not fit. */
int mg__path(char *buf, size_t buf_len, const char *fmt, ...) MG_PRINTF(3, 4);

/* Parses an unsigned decimal at *s, skipping leading blanks, and advances
 * *s past it. Returns 0 or MG_EPARSE / MG_ERANGE. */
int mg__parse_u64(const char **s, uint64_t *out);

/* ---- posix/dl.c, win/dl.c: the dynamic loader ------------------------------ */

/* The one place the library touches the loader (NVML is loaded at run
 * time). POSIX: dlopen(name, RTLD_NOW | RTLD_LOCAL), dlsym, dlclose, and
 * dlerror's text (or "unknown error"). Windows: a bare name is looked for
 * in NVIDIA's places only (System32, then NVIDIA Corporation\NVSMI under
 * Program Files), a path as given; never the current folder or PATH. */
void *mg__dl_open(const char *name);
void *mg__dl_sym(void *lib, const char *symbol);
void mg__dl_close(void *lib);
const char *mg__dl_error(void);

/* ---- textbuf.c: text builder and numeric locale -------------------------- */

/* An append-only writer into a buffer the caller owns, with snprintf's rule:
 * the buffer stays NUL-terminated (when buf_len > 0), what fits is written,
 * and the length the whole text needs is counted. buf may be NULL with len
 * 0 to measure only. */
typedef struct mg__tb {
    char *buf;
    size_t len;
    size_t pos; /* bytes the text needs so far, may exceed len */
    bool bad;   /* vsnprintf failed: mg__tb_done reports MG_EINVAL */
} mg__tb;

void mg__tb_init(mg__tb *b, char *buf, size_t len);
void mg__tb_printf(mg__tb *b, const char *fmt, ...) MG_PRINTF(2, 3);
/* Appends n raw bytes, truncating like mg__tb_printf. */
void mg__tb_put(mg__tb *b, const char *s, size_t n);
/* The length the whole text needs, MG_EINVAL if a vsnprintf failed, or
 * MG_ENOBUFS when it is beyond INT_MAX. */
int mg__tb_done(const mg__tb *b);

/* Switches the calling thread (only) to the "C" numeric locale, so "91.2"
 * is written and read with a dot whatever the program's locale; _end puts
 * back what _begin found. Always pair them in the same function. */
typedef struct mg__num_locale {
    void *c;   /* the "C" locale_t, NULL when it could not be made */
    void *old; /* the thread's locale_t before */
} mg__num_locale;

mg__num_locale mg__num_locale_begin(void);
void mg__num_locale_end(mg__num_locale l);

/* Whether the user's language, when no LC_ALL / LC_MESSAGES / LANG says
 * one, is Japanese: never on POSIX (no variable is the C locale); on
 * Windows, whose users set no such variable, the UI language. */
bool mg__user_lang_ja(void);

/* ---- report.c: the reason of a verdict ------------------------------------ */

/* Where the machine's RAM figures come from, as the system check names it. */
#ifdef _WIN32
#define MG__MACHINE_RAM_SOURCE "GlobalMemoryStatusEx"
#else
#define MG__MACHINE_RAM_SOURCE "/proc/meminfo"
#endif

/* Appends the reason a verdict gives, without marker, "[Batch N] " prefix
 * or newline, e.g. "GPU usage high: 91.2% (10.94GB/12.0GB)" or "RAM free
 * below floor: 1.50GB free, floor 2.0GB"; Japanese for MG_LANG_JA, English
 * otherwise. Appends nothing for a safe verdict. Numbers follow the
 * thread's numeric locale: call it between mg__num_locale_begin/_end. */
void mg__format_reason(const mg_verdict *v, mg_lang lang, mg__tb *b);

/* ---- probe_linux.c: RAM, swap, cgroup, process tree, PSI ---------------- */

typedef struct mg__probe mg__probe;

/* Opens /proc/meminfo (required: MG_ENOENT / MG_EIO / MG_EPARSE when it
 * cannot be read or parsed), /proc/pressure/memory and the caller's memory
 * cgroup (both optional) under the given roots, and the tree rooted at pid
 * (0 = the calling process). */
int mg__probe_open(mg__probe **out, const char *proc_root,
                   const char *cgroup_root, int pid, const mg__log *log);
/* Re-roots the process tree (0 = the calling process). MG_ESRCH when
 * proc_root has no such pid. A missing root at open is not an error: the
 * tree reads as unknown. */
int mg__probe_set_pid(mg__probe *p, int pid);
/* As mg__probe_set_pid, but the tree is everything below pid, pid itself
 * not counted (an empty set is a known tree of 0 processes). */
int mg__probe_set_descendants(mg__probe *p, int pid);
/* Rediscovers the tree now and copies its members' PIDs into pids[0..cap):
 * see mg_tree_pids(). */
int mg__probe_tree_pids(mg__probe *p, uint64_t now_ms, int *pids, size_t cap);
/* Fills snap->ram's meminfo_* fields, snap->swap, snap->cgroup, snap->tree
 * and snap->psi, but for the MG_SKIP_* sources in `skip`; each one's `known`
 * flag says whether it was read. The tree
 * is rediscovered when it has not been for a second (or on the first call),
 * member RSS is re-read every call. Leaves every other field alone. */
void mg__probe_sample(mg__probe *p, uint64_t now_ms, unsigned skip, mg_snapshot *snap);
/* Reads the PSS of every member counted in the tree `t` that the last
 * mg__probe_sample filled (snap->tree) and sets t->pss_known, pss_bytes
 * and pss_unread: a member gone since is left out, one whose smaps cannot
 * be read counts with its RSS (pss_unread says how many). Costs a page-table
 * walk per member: call it only when the figure decides something. Does
 * nothing when t is not known. */
void mg__probe_tree_pss(mg__probe *p, mg_proctree *t);
void mg__probe_close(mg__probe *p);

/* ---- ram.c: the effective RAM figure ------------------------------------ */

/* From the meminfo, cgroup and tree figures already in snap and the budget
 * (0 = none), fills snap->ram.{known, source, total, available, used,
 * used_frac}: every applicable limit is evaluated and the one closest to
 * full decides. */
void mg__ram_combine(mg_snapshot *snap, uint64_t ram_budget_bytes);

/* ---- gpu_*.c: GPU backends ----------------------------------------------- */

typedef struct mg__gpu_backend {
    const char *name;
    /* Loads the backend. Never fails for "no library / no driver / no
     * device": returns 0 with *state NULL (and *why saying which) or with a
     * state holding at least one device. Returns a negative code only for
     * MG_ENOMEM. Copies *log: its callback must stay valid until close. */
    int (*open)(void **state, const char *library, const char *visible,
                const mg__log *log, mg_gpu_state *why);
    /* Fills snap->gpu_state, gpu_count and gpus[]. Called only with the
     * non-NULL state open() gave; a NULL state means the context reports the
     * *why from open() and zero devices without calling query. */
    void (*query)(void *state, mg_snapshot *snap);
    /* Releases everything open() took. NULL is a no-op. */
    void (*close)(void *state);
} mg__gpu_backend;

extern const mg__gpu_backend mg__gpu_nvml;

#endif /* MG_INTERNAL_H */
