/* SPDX-License-Identifier: MIT */
/*
 * memguard.h: the one public header of libmemguard.
 *
 * libmemguard measures what decides whether a training run is about to run out
 * of memory (system RAM, the container's cgroup limit, the run's process tree,
 * PSI, and device-wide GPU memory through NVML loaded at run time), classifies
 * a sample as SAFE / WARN / CRITICAL with a pure function, and formats the
 * seed's reports (English or Japanese) into buffers the caller owns. It never
 * prints, exits or aborts; errors are negative MG_E* codes and diagnostics go
 * through the log callback in mg_config. Everything it measures and decides
 * lives in an mg_ctx; the one piece of process-wide state is the stop flag of
 * mg_stop_open (signal dispositions are process-wide themselves). The
 * monitor does not act (it sends no signal and saves nothing): the programs
 * built on it do, and for them the library has two helpers, mg_stop_* (the
 * trainer's side of `memguard run`'s stop request: a signal handler that only
 * sets a flag, and the stop file) and mg_atomic_* (a checkpoint written so
 * that its final name never holds a torn file).
 *
 * Worked example: one check at the seed's thresholds, printed by the caller.
 *
 *     #include <memguard.h>
 *
 *     mg_config cfg = {0};                 // zero value = the seed's defaults
 *     int err;
 *     mg_ctx *ctx = mg_create(&cfg, &err); // opens /proc files, loads NVML if any
 *     if (!ctx) { fprintf(stderr, "memguard: %s\n", mg_strerror(err)); return 1; }
 *
 *     mg_snapshot snap;
 *     mg_verdict v;
 *     mg_policy_state st = {0};
 *     if (mg_sample(ctx, &snap) == 0) {
 *         mg_level level = mg_classify(mg_ctx_config(ctx), &snap, &st, &v);
 *         char buf[2048];
 *         mg_text_opts txt = mg_text_opts_from_env(1);   // language + emoji for stdout
 *         mg_format_system_check(&snap, &txt, buf, sizeof buf);
 *         fputs(buf, stdout);
 *         if (level != MG_LEVEL_SAFE) {
 *             mg_format_warning(&v, &txt, -1, buf, sizeof buf);
 *             fputs(buf, stdout);
 *         }
 *     }
 *     mg_destroy(ctx);
 *
 * Conventions: bytes are uint64_t named *_bytes, durations *_ms, fractions are
 * doubles in 0..1 named *_frac. Every reading carries a `known` flag; a value
 * whose flag is false is meaningless and is never 0-as-unknown. Functions that
 * can fail return int: 0 on success, a negative MG_E* code otherwise. A context
 * is not thread-safe: use one per thread, or serialise calls.
 */
#ifndef MEMGUARD_H
#define MEMGUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(MG_BUILDING_SHARED)
#define MG_API __declspec(dllexport)
#elif defined(_WIN32) && defined(MG_USING_SHARED)
#define MG_API __declspec(dllimport)
#elif defined(__GNUC__) && !defined(_WIN32)
#define MG_API __attribute__((visibility("default")))
#else
#define MG_API
#endif

#define MG_VERSION_MAJOR 0
#define MG_VERSION_MINOR 1
#define MG_VERSION_PATCH 0
#define MG_VERSION_STRING "0.1.0"

/* ------------------------------------------------------------------------- */
/* Errors                                                                    */
/* ------------------------------------------------------------------------- */

/* One table gives the enum, mg_strerror() and mg_err_name(). The numbers are
 * fixed (not errno values) so they mean the same on every platform. */
#define MG_ERRNO_MAP(XX)                                                      \
    XX(EINVAL, -1, "invalid argument")                                        \
    XX(ENOMEM, -2, "out of memory")                                           \
    XX(EIO, -3, "I/O error")                                                  \
    XX(ENOENT, -4, "file or directory not found")                             \
    XX(EPARSE, -5, "malformed input")                                         \
    XX(ENODEV, -6, "no such device")                                          \
    XX(ERANGE, -7, "value out of range")                                      \
    XX(ECONFIG, -8, "invalid configuration")                                  \
    XX(ESRCH, -9, "no such process")                                          \
    XX(ENOSPC, -10, "no space left on device")                                \
    XX(EPERM, -11, "permission denied")                                       \
    XX(ENOLIB, -12, "library not found")                                      \
    XX(EGPU, -13, "GPU query failed")                                         \
    XX(ENOBUFS, -14, "buffer too small")

typedef enum mg_error {
    MG_OK = 0,
#define MG__ERR_ENUM(name, code, text) MG_##name = (code),
    MG_ERRNO_MAP(MG__ERR_ENUM)
#undef MG__ERR_ENUM
} mg_error;

/* Human text for an MG_E* code ("unknown error" for anything else). Static
 * storage, never NULL. */
/* The version of the library actually loaded (MG_VERSION_STRING is the
 * header's): "0.1.0". Static storage. A binding or a program built against
 * one header can check what it runs with. */
MG_API const char *mg_version(void);
MG_API const char *mg_strerror(int err);
/* The code's name, e.g. "MG_EPARSE". Static storage, never NULL. */
MG_API const char *mg_err_name(int err);

/* ------------------------------------------------------------------------- */
/* Exit statuses shared by every memguard program and binding                */
/* ------------------------------------------------------------------------- */

typedef enum mg_exit {
    MG_EXIT_OK = 0,        /* success; `check`: level safe */
    MG_EXIT_ERROR = 1,     /* a runtime error (a source could not be read) */
    MG_EXIT_USAGE = 2,     /* bad flags, values or environment */
    MG_EXIT_WARN = 3,      /* `check`: level warn */
    MG_EXIT_CRITICAL = 4,  /* `check`: level critical */
    MG_EXIT_MEMSTOP = 75,  /* stopped for memory after a good checkpoint
                            * (EX_TEMPFAIL: fix the cause, then resume) */
    MG_EXIT_MEMKILL = 76   /* memguard run had to kill the child */
} mg_exit;

/* ------------------------------------------------------------------------- */
/* Logging                                                                   */
/* ------------------------------------------------------------------------- */

typedef enum mg_log_level {
    MG_LOG_ERROR = 0,
    MG_LOG_WARN = 1,
    MG_LOG_INFO = 2,
    MG_LOG_DEBUG = 3
} mg_log_level;

/* Receives one diagnostic line without a trailing newline. `msg` is valid only
 * during the call. Called on the thread that called into the library. */
typedef void (*mg_log_fn)(void *user, mg_log_level level, const char *msg);

/* ------------------------------------------------------------------------- */
/* Configuration                                                             */
/* ------------------------------------------------------------------------- */

/* Defaults: the seed's numbers. */
#define MG_DEFAULT_WARN_GPU 0.90
#define MG_DEFAULT_STOP_GPU 0.92
#define MG_DEFAULT_WARN_RAM 0.85
#define MG_DEFAULT_STOP_RAM 0.88
#define MG_DEFAULT_CHECK_TRAIN 10u
#define MG_DEFAULT_CHECK_EVAL 15u
/* A warning clears only once the value is this far below the warn threshold,
 * so a run hovering at 90.0 % GPU does not flap between levels. */
#define MG_DEFAULT_HYSTERESIS 0.02
/* earlyoom's adaptive sleep: headroom / worst fill rate, clamped. 6000
 * MiB/s is the fastest RAM fill earlyoom measured (stress -m 4), 800 MiB/s
 * its swap fill; GPUs fill faster than RAM (a cudaMalloc of several GiB is
 * one call), hence 10 GiB/s. earlyoom clamps at 100 ms; we go down to 10 ms
 * because a budget of a few GiB at 1-4 GB/s is crossed in tens of ms. A
 * sample without PSS costs 7-45 us, so even 10 ms is < 0.5 % of a core, and
 * the interval only gets that short when less than 60 MB are left (a
 * sample that reads PSS costs more: see mg_next_poll_ms). */
#define MG_DEFAULT_MIN_INTERVAL_MS 10u
#define MG_DEFAULT_MAX_INTERVAL_MS 1000u
#define MG_DEFAULT_RAM_FILL_RATE (6000ull << 20)
#define MG_DEFAULT_SWAP_FILL_RATE (800ull << 20)
#define MG_DEFAULT_GPU_FILL_RATE (10ull << 30)
#define MG_DEFAULT_PREDICT_LEAD_MS 3000u

#define MG_MAX_GPUS 16

typedef enum mg_lang {
    MG_LANG_AUTO = 0, /* from LC_ALL / LC_MESSAGES / LANG */
    MG_LANG_EN = 1,
    MG_LANG_JA = 2
} mg_lang;

/* Bits of mg_config.skip_sources, for callers that want the cheapest
 * sample (RAM only: one pread of /proc/meminfo). */
#define MG_SKIP_CGROUP 1u
#define MG_SKIP_TREE 2u  /* not allowed with ram_budget_bytes */
#define MG_SKIP_PSI 4u

/* Zero-initialise, set what you need, pass to mg_create(). Every zero field
 * takes the default named in its comment. The struct is copied: strings must
 * live only for the duration of mg_create(). */
typedef struct mg_config {
    double warn_gpu_frac;          /* 0 = 0.90 */
    double stop_gpu_frac;          /* 0 = 0.92 */
    double warn_ram_frac;          /* 0 = 0.85 */
    double stop_ram_frac;          /* 0 = 0.88 */
    uint64_t min_free_ram_bytes;   /* 0 = no floor; else critical below it */
    uint64_t min_free_gpu_bytes;   /* 0 = no floor; per device */
    uint64_t ram_budget_bytes;     /* 0 = none; else the process tree's
                                    * memory (mg_proctree.used_bytes: PSS,
                                    * shared pages once) against this many
                                    * bytes */
    unsigned check_train_every;    /* batches; 0 = 10 */
    unsigned check_eval_every;     /* batches; 0 = 15 */
    double hysteresis_frac;        /* 0 = 0.02; negative = none */
    uint32_t min_interval_ms;      /* 0 = 10 */
    uint32_t max_interval_ms;      /* 0 = 1000 */
    uint64_t ram_fill_rate_bytes_per_s;  /* 0 = 6000 MiB/s */
    uint64_t swap_fill_rate_bytes_per_s; /* 0 = 800 MiB/s */
    uint64_t gpu_fill_rate_bytes_per_s;  /* 0 = 10 GiB/s */
    /* Acting on the trend (mg_fill): a resource already at its warn
     * threshold whose measured growth would fill it (100 %) sooner than
     * this is critical, so the checkpoint starts before the stop threshold
     * and finishes before memory runs out. It should be the duration of the
     * trainer's last checkpoint save plus a margin: mg_predict_lead_ms()
     * turns a measured save into one. Below the warn threshold a fast
     * growth is only shown, never acted on: a burst there (the first
     * batch's allocations, DataLoader workers forking) projects a full
     * machine that does not come. */
    uint32_t predict_lead_ms;      /* 0 = 3000 */
    bool no_predict;               /* true: thresholds only (the growth is
                                    * still measured and shown) */
    int pid;                       /* root of the watched process tree;
                                    * 0 = the calling process */
    bool no_gpu;                   /* true: do not load NVML at all */
    unsigned skip_sources;         /* MG_SKIP_* bits: sources not read (RAM
                                    * from meminfo is always read) */
    mg_lang lang;                  /* text of mg_check_memory_safety() */
    /* Injectable sources. NULL = the environment variable in brackets, and
     * when that is unset or empty, the system default. */
    const char *proc_root;         /* [MEMGUARD_PROC_ROOT] "/proc" (Linux;
                                    * Windows ignores it) */
    const char *cgroup_root;       /* [MEMGUARD_CGROUP_ROOT] "/sys/fs/cgroup"
                                    * (Linux; Windows ignores it) */
    const char *nvml_library;      /* [MEMGUARD_NVML_LIBRARY] "libnvidia-ml.so.1";
                                    * Windows: "nvml.dll" from System32 or
                                    * NVIDIA Corporation\NVSMI */
    const char *visible_devices;   /* [CUDA_VISIBLE_DEVICES] all devices */
    mg_log_fn log_fn;              /* NULL = diagnostics are dropped */
    void *log_user;                /* passed to log_fn */
    mg_log_level log_level;        /* most verbose level delivered; 0 = errors */
} mg_config;

/* Copies `in` to `out` with every zero field replaced by its default (the
 * string fields too, from the environment where set). Does not validate. */
MG_API void mg_config_resolve(const mg_config *in, mg_config *out);

/* Checks a configuration (defaults applied first). Returns 0, or MG_ECONFIG
 * with one line in `msg` (may be NULL) naming the field and what is allowed,
 * e.g. "warn_gpu_frac 0.95 is above stop_gpu_frac 0.92". */
MG_API int mg_config_check(const mg_config *cfg, char *msg, size_t msg_len);

/* ------------------------------------------------------------------------- */
/* Snapshot: one sample of every source                                      */
/* ------------------------------------------------------------------------- */

/* Which limit set ram.total_bytes (the one closest to full decides). */
typedef enum mg_ram_source {
    MG_RAM_SOURCE_MEMINFO = 0, /* the machine: /proc/meminfo MemTotal and
                                * MemAvailable; on Windows
                                * GlobalMemoryStatusEx's physical memory */
    MG_RAM_SOURCE_CGROUP = 1,  /* the container's effective cgroup limit; on
                                * Windows the memory limit of the job object
                                * the process runs in */
    MG_RAM_SOURCE_BUDGET = 2,  /* the caller's budget vs the tree's used_bytes */
    MG_RAM_SOURCE_COMMIT = 3   /* Windows: the commit charge vs the commit
                                * limit (RAM + page files), where allocations
                                * (and CUDA's pinned host memory) fail */
} mg_ram_source;

/* How fast one figure grows, measured by mg_sample over the recent samples
 * of its context: the least-squares slope of the last points (at most 8,
 * none older than 5 s). Unknown until 3 points of the same kind span at
 * least 50 ms: a context's first samples have no trend. A budget's growth
 * is that of the tree's RSS sum (read at every sample, unlike PSS), and a
 * change in the number of members starts it over (a fork is not growth);
 * its time to full is from the judged figure (used_bytes). */
typedef struct mg_fill {
    bool known;
    double rate_bytes_per_s; /* growth of the used bytes; negative: shrinking */
    double seconds_to_full;  /* until used reaches the total at that rate;
                              * INFINITY when not growing, 0 when full */
} mg_fill;

typedef struct mg_ram {
    bool known;
    mg_ram_source source;
    uint64_t total_bytes;     /* the effective total */
    uint64_t available_bytes; /* total - used, 0 when over */
    uint64_t used_bytes;
    double used_frac;         /* used / total, may exceed 1 */
    /* Every limit that applies (machine, commit, cgroup, budget), the
     * deciding one included: the poll interval follows the one with the
     * least headroom in bytes, which need not be the fullest in fraction. */
    unsigned nlimits;
    struct mg_ram_limit {
        mg_ram_source source;
        uint64_t total_bytes;
        uint64_t used_bytes;
    } limits[4];
    /* The machine's own figures, whatever the source. */
    bool meminfo_known;
    uint64_t mem_total_bytes;     /* MemTotal (Windows: ullTotalPhys) */
    uint64_t mem_available_bytes; /* MemAvailable (estimated on kernels < 3.14;
                                   * Windows: ullAvailPhys) */
    /* Windows' commit charge (GetPerformanceInfo CommitTotal) and commit
     * limit (CommitLimit: RAM plus page files). Unknown on Linux, whose
     * overcommit has no such line. */
    bool commit_known;
    uint64_t commit_used_bytes;
    uint64_t commit_limit_bytes;
    /* The growth of the limit that will be full first at its own rate
     * (fill_source), which need not be the deciding one. */
    mg_fill fill;
    mg_ram_source fill_source;
} mg_ram;

typedef struct mg_swap {
    bool known;
    uint64_t total_bytes; /* SwapTotal; 0 is a real reading: no swap */
    uint64_t free_bytes;  /* SwapFree */
} mg_swap;

typedef struct mg_cgroup {
    bool known;              /* the caller's memory cgroup was found
                              * (Windows: the process is in a job) */
    int version;             /* 1 or 2; 0 = a Windows job object, whose
                              * path and limit_path read "job" and whose
                              * usage is its processes' commit */
    char path[256];          /* cgroup path, e.g. "/user.slice/run-1.scope" */
    bool has_limit;          /* false: unlimited up to the mount point */
    uint64_t limit_bytes;    /* smallest limit on the walk up the hierarchy */
    char limit_path[256];    /* the cgroup that sets it */
    bool usage_known;
    uint64_t usage_bytes;    /* usage of that cgroup, page cache included */
    uint64_t inactive_file_bytes; /* reclaimable cache, subtracted for "used" */
} mg_cgroup;

typedef struct mg_proctree {
    bool known;
    int pid;               /* the root */
    bool descendants_only; /* mg_watch_descendants(): the tree is everything
                            * below pid, pid itself not counted */
    unsigned nprocs;       /* root and all its descendants (descendants only
                            * when descendants_only; may be 0 then) */
    uint64_t rss_bytes;    /* sum of RSS, read at every sample: an upper
                            * bound, a page shared by N members counts N
                            * times (forked workers share their parent's) */
    /* The sum of PSS (/proc/PID/smaps_rollup): a page shared by N processes
     * counts 1/N in each, so the tree's shared pages once. It walks page
     * tables (milliseconds per GiB resident, bench/sample.sh), so mg_sample
     * reads it only when a budget is set and the RSS sum is at or above
     * the point where the budget could read anything but safe: warn_ram_frac
     * minus hysteresis_frac of the budget (or the budget minus
     * min_free_ram_bytes, if lower). Below it the RSS sum already proves
     * the budget safe; at or above it every budget verdict is on PSS. */
    bool pss_known;
    uint64_t pss_bytes;
    unsigned pss_unread;   /* members whose smaps could not be read (another
                            * user's process): counted with their RSS */
    uint64_t used_bytes;   /* the figure judged against the budget:
                            * pss_bytes when pss_known; the estimate when
                            * used_estimated; else rss_bytes */
    /* Between two PSS readings, above the line: the last PSS plus the RSS
     * sum's growth since, capped at the RSS sum. A fresh PSS is read when
     * that estimate reaches the stop line, so no critical or hard-limit
     * verdict rests on it (mg_sample in ctx.c says why it holds). */
    bool used_estimated;
} mg_proctree;

typedef struct mg_psi {
    bool known;            /* /proc/pressure/memory readable */
    double some_avg10;     /* percent of wall time, 0..100 */
    double full_avg10;
} mg_psi;

typedef struct mg_gpu {
    unsigned index;        /* NVML index */
    char name[96];
    char uuid[96];
    bool known;            /* memory figures valid */
    uint64_t total_bytes;
    uint64_t free_bytes;
    uint64_t reserved_bytes; /* driver/firmware reserve (NVML v2), 0 if v1 */
    double used_frac;      /* (total - free) / total */
    mg_fill fill;          /* its growth (mg_fill) */
} mg_gpu;

/* Why the GPU list is what it is. */
typedef enum mg_gpu_state {
    MG_GPU_OK = 0,          /* gpu_count devices listed (may be 0 if hidden) */
    MG_GPU_DISABLED = 1,    /* cfg.no_gpu */
    MG_GPU_NO_LIBRARY = 2,  /* NVML could not be loaded */
    MG_GPU_NO_DRIVER = 3,   /* NVML init failed (no driver, no device) */
    MG_GPU_NO_DEVICE = 4,   /* NVML works, 0 devices (or none visible) */
    MG_GPU_ERROR = 5        /* a query failed; see the log */
} mg_gpu_state;

typedef struct mg_snapshot {
    uint64_t time_ms;       /* CLOCK_MONOTONIC */
    uint64_t sample_us;     /* what taking this sample cost (wall clock,
                             * mg_sample); 0 = not measured */
    uint64_t sample_backlog_us; /* sampling work of this context not yet paid
                             * back at a tenth of the wall time since (a
                             * leaky bucket: it drains 100 us per ms), this
                             * sample included; mg_next_poll_ms paces the
                             * next sample by it */
    mg_ram ram;
    mg_swap swap;
    mg_cgroup cgroup;
    mg_proctree tree;
    mg_psi psi;
    mg_gpu_state gpu_state;
    unsigned gpu_count;
    mg_gpu gpus[MG_MAX_GPUS];
    /* The trainer's own figures (PyTorch's "allocated / reserved", or the C
     * trainer's arena), when it gave them with mg_set_trainer_memory(). */
    bool trainer_known;
    uint64_t trainer_allocated_bytes;
    uint64_t trainer_reserved_bytes;
} mg_snapshot;

/* ------------------------------------------------------------------------- */
/* Context                                                                   */
/* ------------------------------------------------------------------------- */

typedef struct mg_ctx mg_ctx;

/* Validates `cfg` (NULL = all defaults), opens the sources and loads NVML.
 * A missing GPU, NVML, cgroup or PSI is not an error: it shows as a state in
 * the snapshot. Returns NULL and sets *err (may be NULL) to MG_ECONFIG,
 * MG_ENOMEM, or MG_ENOENT / MG_EIO when the proc root cannot be read. */
MG_API mg_ctx *mg_create(const mg_config *cfg, int *err);
/* Closes every descriptor and unloads NVML. NULL is a no-op. */
MG_API void mg_destroy(mg_ctx *ctx);
/* The resolved configuration (defaults filled in). Owned by ctx. */
MG_API const mg_config *mg_ctx_config(const mg_ctx *ctx);

/* Takes one sample into *out. Returns 0 even when some sources are unknown
 * (their `known` flags say so); MG_EINVAL for NULL arguments. */
MG_API int mg_sample(mg_ctx *ctx, mg_snapshot *out);
/* Watch the process tree rooted at `pid` from the next sample on. Returns
 * MG_ESRCH when /proc has no such process. */
MG_API int mg_watch_pid(mg_ctx *ctx, int pid);
/* Like mg_watch_pid, but the tree is everything below `pid` (0 = the
 * calling process), not pid itself: a supervisor that is a child subreaper
 * watches its own descendants, so workers that called setsid() and were
 * reparented to it still count. The root is still watched for being gone
 * (MG_ESRCH now, an unknown tree later); no descendants yet is a known tree
 * of 0 processes and 0 bytes. Returns MG_ESRCH when /proc has no such
 * process, MG_EINVAL for a NULL ctx or a negative pid. */
MG_API int mg_watch_descendants(mg_ctx *ctx, int pid);
/* Rediscovers the watched tree now and copies its members' PIDs into
 * pids[0..cap): the root first under mg_watch_pid, the root left out under
 * mg_watch_descendants; then the rest in discovery order (parents before
 * their children). Returns the number of members, which may exceed cap
 * (then only the first cap were copied; pids may be NULL when cap is 0),
 * MG_ESRCH when the root is gone, MG_EINVAL for a NULL ctx or a NULL pids
 * with cap > 0, MG_ENOMEM. Follows MEMGUARD_PROC_ROOT (proc_root) like the
 * samples do. */
MG_API int mg_tree_pids(mg_ctx *ctx, int *pids, size_t cap);
/* Gives the trainer's own GPU (or arena) figures; they are copied into every
 * later snapshot and printed by the reports. */
MG_API void mg_set_trainer_memory(mg_ctx *ctx, uint64_t allocated_bytes,
                                  uint64_t reserved_bytes);

/* Sets the lead of the prediction (mg_config.predict_lead_ms) from now on:
 * a trainer that has measured its checkpoint save passes
 * mg_predict_lead_ms(save_ms). Returns MG_EINVAL for a NULL ctx or 0 ms. */
MG_API int mg_set_predict_lead_ms(mg_ctx *ctx, uint32_t lead_ms);

/* The lead for a checkpoint save measured at `save_ms`: twice the save plus
 * one second (a save under memory pressure, when it matters, is slower than
 * the one measured in calm), at most 10 minutes. */
MG_API uint32_t mg_predict_lead_ms(uint64_t save_ms);

/* ------------------------------------------------------------------------- */
/* Policy: pure functions, no I/O                                            */
/* ------------------------------------------------------------------------- */

typedef enum mg_level {
    MG_LEVEL_ERROR = -1, /* mg_classify's NULL arguments: nothing judged */
    MG_LEVEL_SAFE = 0,
    MG_LEVEL_WARN = 1,
    MG_LEVEL_CRITICAL = 2
} mg_level;

typedef enum mg_resource {
    MG_RES_NONE = 0,
    MG_RES_RAM = 1,
    MG_RES_GPU = 2
} mg_resource;

/* Bits of mg_verdict.unknown: what could not be judged. */
#define MG_UNKNOWN_RAM 1u
#define MG_UNKNOWN_GPU 2u /* a listed GPU had no memory figures */

typedef struct mg_verdict {
    mg_level level;
    mg_resource resource;  /* what decided the level (NONE when safe) */
    unsigned gpu_index;    /* when resource is GPU */
    double value_frac;     /* its used fraction */
    double threshold_frac; /* the threshold it reached, as a used fraction;
                            * when by_floor, the floor's equivalent,
                            * 1 - floor_bytes / total_bytes (negative when
                            * the floor exceeds the total), so fraction and
                            * floor verdicts compare on one scale */
    bool by_floor;         /* decided by min_free_*_bytes, not a fraction */
    uint64_t floor_bytes;  /* the floor that decided, when by_floor; else 0 */
    uint64_t used_bytes;   /* of that resource */
    uint64_t total_bytes;
    unsigned unknown;      /* MG_UNKNOWN_* bits; never read as safe silently */
    /* Critical by the trend: the resource was at its warn threshold and its
     * growth would fill it within predict_lead_ms (mg_config). */
    bool by_trend;
    double rate_bytes_per_s; /* when by_trend: that growth */
    double seconds_to_full;  /* when by_trend: the time left at it */
} mg_verdict;

/* Hysteresis memory between calls; zero-initialise. */
typedef struct mg_policy_state {
    mg_level last;
} mg_policy_state;

/* Classifies a snapshot. Critical if any resource is at or above its stop
 * threshold or below its floor, or is at warn and its growth (mg_fill) would
 * fill it within predict_lead_ms (by_trend; not with no_predict); warn if
 * any is at or above its warn threshold
 * (or, once warned, has not dropped hysteresis_frac below it); else safe. The
 * worst resource is described in *v (may be NULL). `st` may be NULL for a
 * stateless check. Zero fields of cfg read as the defaults. A NULL cfg or
 * snap returns MG_LEVEL_ERROR (== MG_EINVAL), never a level, with *v saying
 * nothing was judged. */
MG_API mg_level mg_classify(const mg_config *cfg, const mg_snapshot *snap,
                            mg_policy_state *st, mg_verdict *v);

/* Milliseconds until the next sample: the smallest headroom to a stop
 * threshold divided by its fill rate, clamped to [min, max]_interval_ms.
 * Then, even above max_interval_ms, never so soon that the next sample
 * (assumed to cost what this one did, snap->sample_us) would take the
 * backlog (snap->sample_backlog_us) past 100 ms: sampling takes at most a
 * tenth of one core plus a burst of 100 ms of work, so a tree crossing its
 * thresholds is followed at the headroom's pace while a sustained costly
 * reading settles at 10x its cost. Only samples that read PSS cost enough
 * to matter. */
MG_API uint32_t mg_next_poll_ms(const mg_config *cfg, const mg_snapshot *snap);

/* The seed's call: is_safe is false when GPU >= threshold_gpu or RAM >=
 * threshold_ram; warning then holds the seed's text, e.g.
 * "⚠️ GPU usage high: 91.2% (10.94GB/12.0GB)", else "". Samples once. */
MG_API int mg_check_memory_safety(mg_ctx *ctx, double threshold_gpu,
                                  double threshold_ram, bool *is_safe,
                                  char *warning, size_t warning_len);

/* ------------------------------------------------------------------------- */
/* Reports: the seed's texts, written into the caller's buffer               */
/* ------------------------------------------------------------------------- */

typedef struct mg_text_opts {
    mg_lang lang;  /* EN or JA (AUTO is resolved from the environment) */
    bool emoji;    /* false: plain ASCII markers instead */
} mg_text_opts;

/* Language from LC_ALL, else LC_MESSAGES, else LANG ("ja*" = Japanese);
 * emoji when the locale's codeset is UTF-8 and, if fd >= 0 is a terminal,
 * TERM is not "linux" or "dumb". */
MG_API mg_text_opts mg_text_opts_from_env(int fd);

/* Every formatter writes a NUL-terminated text into buf and returns the
 * length it needed (snprintf's rule: >= buf_len means truncated), or a
 * negative MG_E* code. */

/* The "System Resource Check" block: RAM used/total (%) and its source,
 * swap, cgroup, process tree, PSI, and per GPU name, allocated / reserved
 * (the trainer's figures when given), total; "GPU: none" when there is none. */
MG_API int mg_format_system_check(const mg_snapshot *snap,
                                  const mg_text_opts *t, char *buf,
                                  size_t buf_len);
/* The monitoring banner: thresholds, check cadence, emergency behaviour. */
MG_API int mg_format_banner(const mg_config *cfg, const mg_text_opts *t,
                            char *buf, size_t buf_len);
/* The warning line, e.g. "[Batch 50] ⚠️ GPU usage high: 91.2%
 * (10.94GB/12.0GB)\n"; batch < 0 omits the "[Batch N] " prefix. */
MG_API int mg_format_warning(const mg_verdict *v, const mg_text_opts *t,
                             long batch, char *buf, size_t buf_len);
/* The emergency banner: reason, epoch, saved file (NULL: "not saved"). */
MG_API int mg_format_emergency(const mg_verdict *v, const mg_text_opts *t,
                               long epoch, const char *saved_path, char *buf,
                               size_t buf_len);
/* The same banner with a reason given as text (e.g. mg_stop_reason's, or
 * "[rank 1] ⚠️ RAM usage high: ..."), printed verbatim after "Reason: ";
 * NULL or "" leaves the line out. */
MG_API int mg_format_emergency_text(const char *reason, const mg_text_opts *t,
                                    long epoch, const char *saved_path,
                                    char *buf, size_t buf_len);
/* One JSON object: level, reason, ram, swap, cgroup, process_tree, psi,
 * gpus, thresholds, unknown (see the man page for the schema). */
MG_API int mg_format_json(const mg_config *cfg, const mg_snapshot *snap,
                          const mg_verdict *v, char *buf, size_t buf_len);

/* s as a JSON string literal (RFC 8259, quotes included) in buf: control
 * characters escaped, invalid UTF-8 as \ufffd, so the result is always
 * valid JSON. When it does not fit it is cut at a character and still
 * closed, and MG_ENOBUFS is returned; MG_EINVAL for NULLs or buf_len < 3. */
MG_API int mg_json_quote(const char *s, char *buf, size_t buf_len);

/* Short names: "safe" / "warn" / "critical", "meminfo" / "cgroup" /
 * "budget" / "commit". Static storage. */
MG_API const char *mg_level_name(mg_level level);
MG_API const char *mg_ram_source_name(mg_ram_source source);

/* ------------------------------------------------------------------------- */
/* The trainer's side of `memguard run`                                      */
/* ------------------------------------------------------------------------- */

/* The names of the environment variables of the protocol below. */
#define MG_ENV_STOP_FILE "MEMGUARD_STOP_FILE"
#define MG_ENV_ACK_FILE "MEMGUARD_ACK_FILE"
#define MG_ENV_STOP_SIGNAL "MEMGUARD_STOP_SIGNAL"
#define MG_ENV_SUPERVISOR_PID "MEMGUARD_SUPERVISOR_PID"
/* Set by `memguard run --restart N` for the command it starts: which start
 * this is (0 the first, 1.. the restarts), and on a restart the checkpoint
 * the previous start saved and acknowledged, to resume from. */
#define MG_ENV_ATTEMPT "MEMGUARD_ATTEMPT"
#define MG_ENV_RESUME "MEMGUARD_RESUME"
/* Set by a memguard run that takes "saved and continuing" as an answer to
 * a request (see mg_stop_continue): where the trainer writes it. */
#define MG_ENV_CONTINUE_FILE "MEMGUARD_CONTINUE_FILE"
/* Windows only: the name of the stop event, and the prefix of the "armed"
 * events (see below). */
#define MG_ENV_STOP_EVENT "MEMGUARD_STOP_EVENT"
#define MG_ENV_ARMED_EVENT "MEMGUARD_ARMED_EVENT"

/* memguard run tells its command, in the environment: MEMGUARD_STOP_FILE
 * (a path that appears when memory is critical), MEMGUARD_ACK_FILE (where
 * the trainer acknowledges a good save) and MEMGUARD_STOP_SIGNAL (the number
 * of the checkpoint signal, SIGUSR1 by default, sent at the same moment to
 * every process of the command's tree that catches it; the others learn of
 * the request from the file). A trainer checks mg_stop_requested() at every
 * batch of every loop, saves, acknowledges and exits with MG_EXIT_MEMSTOP:
 *
 *     mg_stop *stop = mg_stop_open(0, NULL);
 *     for (...each batch...) {
 *         train_one_batch();
 *         if (mg_stop_requested(stop)) {
 *             save_checkpoint(path);
 *             mg_stop_acknowledge(stop, path);
 *             exit(MG_EXIT_MEMSTOP);
 *         }
 *     }
 *
 * The stop file is text: its first line is MG_STOP_FILE_HEADER, its second
 * the reason (English, no marker), e.g. "RAM usage high: 88.5%
 * (1.77GB/2.0GB)". The acknowledgement holds the checkpoint's absolute path
 * and a newline; memguard run exits with MG_EXIT_MEMSTOP when it exists,
 * whatever a launcher (torchrun, mp.spawn) made of the trainer's status.
 *
 * The signal handler only sets a flag: saving inside a handler is what hangs
 * (Lightning #21406). That flag is the one piece of process-wide state in
 * the library, because signal dispositions are process-wide themselves.
 *
 * Windows has no SIGUSR1. There memguard run also sets MEMGUARD_STOP_EVENT,
 * the name of a manual-reset event it sets with the stop file, and
 * MEMGUARD_ARMED_EVENT; the checkpoint signal is SIGBREAK (21): a
 * CTRL_BREAK_EVENT to the command's process group, sent only when every
 * process of the run holds the event "<MEMGUARD_ARMED_EVENT>-<its pid>",
 * because its default action ends a process unsaved. mg_stop_open installs
 * a console handler for it (flag only; Ctrl+C and the others pass on),
 * then creates that event and holds it until mg_stop_close;
 * mg_stop_requested also looks at the stop event. */
#define MG_STOP_FILE_HEADER "memguard stop request"
typedef struct mg_stop mg_stop;

/* Continuing instead of stopping (a trainer that can shrink its batch). A
 * memory request may be answered with "saved, and continuing at a smaller
 * footprint" instead of a stop, when both sides know how:
 *
 * - memguard run says it takes that answer by setting
 *   MEMGUARD_CONTINUE_FILE (a path beside the stop file), and numbers its
 *   requests: the stop file's third line is "request N memory" (critical
 *   memory: the trainer may continue) or "request N stop" (a manual request:
 *   it must stop), N = 1, 2, ... within one start of the command.
 * - The trainer saves as for a stop and, instead of acknowledging and
 *   exiting, writes MEMGUARD_CONTINUE_FILE through a temporary and a
 *   rename: MG_CONTINUE_FILE_HEADER, then "request N" (the request it
 *   answers), "checkpoint PATH" (the checkpoint's absolute path) and "note
 *   TEXT" (one line for the log, e.g. "batch 8 -> 6"), each ending in a
 *   newline.
 * - memguard run, seeing the answer to its pending request, logs it
 *   (event "continue"), removes the stop file and the answer, and goes
 *   back to watching: no SIGTERM after --grace. Memory still critical then
 *   is a new request (N + 1), sent again to every process that catches
 *   the signal.
 *
 * Old trainers never write the answer: they acknowledge and stop as
 * before. An old memguard run sets no MEMGUARD_CONTINUE_FILE and writes no
 * request line, and a trainer then stops as before (mg_stop_may_continue
 * is false); so does a trainer asked by a bare signal with no memguard run,
 * and one whose request came without a stop file it could read. */
#define MG_CONTINUE_FILE_HEADER "memguard continue"

/* Installs the flag-only handler for `signo` (0: MEMGUARD_STOP_SIGNAL from
 * the environment, else SIGUSR1, SIGBREAK on Windows, where it is the only
 * one accepted; negative: no handler, stop file only) and remembers
 * MEMGUARD_STOP_FILE, MEMGUARD_ACK_FILE and MEMGUARD_CONTINUE_FILE (and on
 * Windows opens the stop event). Works without memguard run too: then only
 * the signal can ask. Returns NULL with *err (may be NULL) set to
 * MG_EINVAL (bad signal number) or MG_ENOMEM. */
MG_API mg_stop *mg_stop_open(int signo, int *err);
/* True once the signal arrived, the stop event is set (Windows) or the stop
 * file exists. Costs a flag read and one stat() (2-3 us): cheap enough for
 * every batch. After mg_stop_continue, only the signal again or a stop
 * file holding another request counts (the file is then read, not only
 * stat()ed, while it is there). */
MG_API bool mg_stop_requested(mg_stop *s);
/* The stop file's path, or NULL when none was given. */
MG_API const char *mg_stop_file(const mg_stop *s);
/* The reason written into the stop file (its second line, without the
 * newline), copied into buf and NUL-terminated (truncated to fit). Returns
 * its length, 0 when there is no stop file or it gives no reason, or
 * MG_EINVAL. Reads at most 4 KiB; never follows a request that is not
 * there. */
MG_API int mg_stop_reason(const mg_stop *s, char *buf, size_t buf_len);
/* Acknowledges a good checkpoint at `checkpoint_path` to memguard run:
 * writes MEMGUARD_ACK_FILE (the checkpoint's absolute path) through a
 * temporary file and a rename, so memguard run never reads half of it.
 * Returns 0 (also when there is no MEMGUARD_ACK_FILE: not under memguard
 * run), MG_EINVAL, or mg_atomic's errors. Call it only after the
 * checkpoint is durably saved, from the one process that saved it. */
MG_API int mg_stop_acknowledge(const mg_stop *s, const char *checkpoint_path);
/* Whether the pending request may be answered with mg_stop_continue: a
 * memguard run that takes the answer (MEMGUARD_CONTINUE_FILE) asked, for
 * memory ("request N memory" in the stop file). False for NULL, a
 * manual request, an old memguard run, a bare signal, or no request. */
MG_API bool mg_stop_may_continue(mg_stop *s);
/* Answers the pending request with "saved `checkpoint_path` and
 * continuing" (see above; `note`, one line, may be NULL): forgets a
 * checkpoint signal that arrived, writes MEMGUARD_CONTINUE_FILE atomically,
 * and from then on mg_stop_requested() ignores the stop file while it holds
 * this request (until memguard run takes the answer and removes it); a new
 * request (a new N, or the signal again) counts. Call it only after the
 * checkpoint is durably saved and the footprint is smaller, from the one
 * process that saved. Returns 0, MG_EINVAL (a bad argument, or
 * mg_stop_may_continue() is false: then stop and acknowledge as before),
 * or mg_atomic's errors. */
MG_API int mg_stop_continue(mg_stop *s, const char *checkpoint_path, const char *note);
/* Restores the previous handler and forgets a signal that arrived. NULL is
 * a no-op. Opening a second mg_stop for the same signal while one is open
 * keeps a request that already arrived. */
MG_API void mg_stop_close(mg_stop *s);

/* ------------------------------------------------------------------------- */
/* Files that are never torn                                                 */
/* ------------------------------------------------------------------------- */

/* Writes a file so that the final name only ever holds a complete file:
 * the bytes go to a temporary file in the same folder ("<name>.tmp.<pid>",
 * never the final name), which commit fsyncs, renames over the target and
 * makes durable with an fsync of the folder. A crash at any moment leaves
 * either the old file or the new one, plus at worst a stray temporary.
 * Caller-allocated and allocation-free, so an emergency save can use it
 * when memory is short. Not thread-safe per object. */
typedef struct mg_atomic {
    char path[4096];      /* the final name */
    char tmp[4096 + 32];  /* the temporary name */
    /* The platform's open file: a descriptor (-1 when not open) on POSIX,
     * room for a HANDLE elsewhere; the reserve keeps the struct's size the
     * same on every platform. Not for the caller. */
    union {
        int fd;
        void *handle;
        uint64_t reserved[4];
    } os;
} mg_atomic;

/* Creates the temporary file (O_EXCL, mode 0644). MG_ENOENT / MG_EPERM /
 * MG_EIO / MG_ENOSPC (disk full) / MG_EINVAL (path too long or empty). */
MG_API int mg_atomic_open(mg_atomic *a, const char *path);
/* Writes all of buf (retrying short writes). MG_EIO / MG_ENOSPC. */
MG_API int mg_atomic_write(mg_atomic *a, const void *buf, size_t len);
/* fsync, close, rename over the target, fsync the folder. On failure the
 * temporary is removed and the target is untouched. */
MG_API int mg_atomic_commit(mg_atomic *a);
/* Closes and removes the temporary; the target is untouched. Safe to call
 * on an object that is not open. */
MG_API void mg_atomic_abort(mg_atomic *a);

/* ------------------------------------------------------------------------- */
/* For bindings (ctypes): sizes of the public structs, to check a mirror    */
/* ------------------------------------------------------------------------- */

MG_API size_t mg_config_size(void);
MG_API size_t mg_snapshot_size(void);
MG_API size_t mg_verdict_size(void);

/* ------------------------------------------------------------------------- */
/* Parsing helpers shared by the programs                                    */
/* ------------------------------------------------------------------------- */

/* "0.9" or "90%" -> 0.9. Accepts (0, 1]. MG_EPARSE / MG_ERANGE. */
MG_API int mg_parse_frac(const char *s, double *out);
/* "4096", "512K", "512M", "8G", "1T" (binary units, optional "B"/"iB",
 * fractions such as "1.5G") -> bytes. MG_EPARSE / MG_ERANGE (0 or overflow). */
MG_API int mg_parse_size(const char *s, uint64_t *out);
/* Decimal digits only, at most `max` ("16"; not " 16", "+16", "0x10",
 * "-0", "1e3") -> value. MG_EPARSE / MG_ERANGE. */
MG_API int mg_parse_uint(const char *s, uint64_t max, uint64_t *out);
/* "60" (seconds), "1.5s", "500ms", "2m", "1h" -> milliseconds, at most
 * max_ms. The same strict decimal grammar. MG_EPARSE / MG_ERANGE. */
MG_API int mg_parse_duration_ms(const char *s, uint64_t max_ms, uint64_t *out);

#ifdef __cplusplus
}
#endif

#endif /* MEMGUARD_H */
