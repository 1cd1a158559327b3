/* SPDX-License-Identifier: MIT */
/*
 * guard.h: the seed's memory monitor inside the trainer. It checks memory
 * at the seed's points (every epoch start, every Nth training batch, every
 * Mth evaluation batch), runs a watcher thread in between so a spike inside
 * a long batch is caught, honours `memguard run`'s stop request (signal or
 * stop file), prints the seed's warning line, and tells the loop when to
 * stop. The loop acts (saves, exits); the guard only measures and decides.
 */
#ifndef UNET_GUARD_H
#define UNET_GUARD_H

#include <stdbool.h>
#include <stdint.h>

#include "memguard.h"

typedef struct guard_opts {
    double warn_gpu, stop_gpu, warn_ram, stop_ram; /* 0 = from the batch table */
    unsigned check_train, check_eval;              /* 0 = 10 / 15 */
    uint64_t ram_budget;                           /* bytes, 0 = none */
    bool no_watcher;
    bool no_predict;                               /* thresholds only (mg_config) */
    int batch;                                     /* picks the table's row */
} guard_opts;

typedef struct guard guard;

/* Opens the library context (thresholds from `o`, or the seed's per-batch
 * table when none were given) and starts the watcher thread. Returns NULL
 * with one line in err. */
guard *guard_open(const guard_opts *o, char *err, size_t err_len);
/* The checks of guard_open that need no monitor (thresholds in order,
 * warn below stop): 0 or MG_ECONFIG with "thresholds: ..." in err. */
int guard_check_opts(const guard_opts *o, char *err, size_t err_len);
void guard_close(guard *g);

/* The trainer's own memory (its arena) as the seed's "allocated /
 * reserved", for the reports. */
void guard_set_trainer_memory(guard *g, uint64_t allocated, uint64_t reserved);

/* A checkpoint save took save_ms: from now on a fast growth at warn is
 * acted on when it would fill memory sooner than mg_predict_lead_ms(save_ms)
 * (the loop's checks and the watcher's alike). */
void guard_note_save(guard *g, uint64_t save_ms);

/* Prints the System Resource Check and the monitoring banner to stdout. */
void guard_print_start(guard *g);

/* Where a check happens, for the cadence and the warning line. */
typedef enum guard_point { GP_EPOCH, GP_TRAIN, GP_EVAL } guard_point;

/* Called at every batch boundary of every loop (and at epoch start). Samples
 * when the cadence says so (batch % N == 0) or when the watcher raised its
 * flag, prints the warning line (rate-limited), and returns true when the
 * loop must stop now: critical memory (confirmed by a second read), or a
 * stop request from `memguard run`. */
bool guard_check(guard *g, guard_point where, long batch);

/* Prints the seed's emergency banner for the stop guard_check() reported:
 * the reason is the verdict, or the one memguard run wrote into its stop
 * file (with a line saying memguard run asked); saved_path NULL means the
 * save failed. */
void guard_print_emergency(const guard *g, long epoch, const char *saved_path);

/* Why guard_check() said stop, for the other ranks of a data-parallel
 * run: GUARD_STOP_CRITICAL (memory here, reason the verdict's text) or
 * GUARD_STOP_REQUESTED (memguard run asked; its stop file's reason, or
 * "stop requested by memguard run"). The reason has no marker and no
 * newline. */
enum { GUARD_STOP_CRITICAL = 1, GUARD_STOP_REQUESTED = 2 };
int guard_stop_reason(const guard *g, char *buf, size_t len);

/* The emergency banner of a stop that rank `origin` ("rank 1 @ node7")
 * asked for: "Reason: [rank 1 @ node7] <marker> <reason>", after a line
 * saying memguard run asked there when kind is GUARD_STOP_REQUESTED. */
void guard_print_emergency_from(const guard *g, long epoch, const char *saved_path,
                                const char *origin, int kind, const char *reason);

/* A prefix for every warning line (a data-parallel rank's
 * "[rank 1 @ node7] "); "" by default. */
void guard_set_label(guard *g, const char *label);

/* Tells memguard run (when it runs us) that `path` is a good checkpoint,
 * so it exits 75 whatever launched us. 0 or a negative MG_E* code. */
int guard_acknowledge(const guard *g, const char *path);

/* --on-memory shrink. Whether the stop guard_check() reported may be
 * answered by continuing at a smaller batch: always for the guard's own
 * critical reading, and for a request of memguard run only when it asked
 * for memory and takes that answer (mg_stop_may_continue). */
bool guard_may_continue(guard *g);
/* After the shrink: answers memguard run's request, if one was pending,
 * with "saved `path` and continuing" (`note`: one line for its log), so it
 * goes back to watching instead of escalating. 0 or a negative MG_E*
 * code (then the trainer must stop and acknowledge as before). */
int guard_continue(guard *g, const char *path, const char *note);
/* One line (no newline) saying why guard_check() stopped: the reading
 * ("RAM usage high: 86.0% (...)"), or "memguard run asked: <its reason>". */
void guard_reason(const guard *g, char *buf, size_t len);
/* The run goes on at `batch`: when the thresholds are the seed's table's,
 * they become that batch's row (said on stdout), as if the run had started
 * there. 0, or MG_ECONFIG when the monitor cannot be made again (the old
 * thresholds stay). Call guard_set_trainer_memory after it. */
int guard_set_batch(guard *g, int batch);

/* The resolved configuration (thresholds in force). */
const mg_config *guard_config(const guard *g);

/* The warn threshold of RAM in the seed's table for this batch size. */
double guard_table_warn_ram(int batch);

#endif /* UNET_GUARD_H */
