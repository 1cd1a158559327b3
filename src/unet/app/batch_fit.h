/* SPDX-License-Identifier: MIT */
/*
 * batch_fit.h: a batch size against the RAM limits in force (the
 * machine, a cgroup, --ram-budget), before anything is allocated, from
 * the model's exact memory plan (unet_plan_for on the run's backend) and
 * RAM in use now:
 * --batch auto's pick, the note that a given batch will reach a
 * threshold, and the refusal of a plan no RAM of this machine could hold.
 *
 * Every plan is counted against RAM, which is where the CPU backend keeps
 * its arena; a device backend's arena would need the device's figures.
 *
 * Not here: the plan itself (model/plan.c), the per-batch threshold table
 * and the monitoring while the run goes (guard.c).
 */
#ifndef UNET_BATCH_FIT_H
#define UNET_BATCH_FIT_H

#include "backend.h"
#include "guard.h"
#include "run_state.h"

#include <stddef.h>
#include <stdint.h>

/* --batch auto: the largest batch whose planned peak (the arena plan on
 * top of what is in use now, the loaded data set included) stays below
 * the RAM warn threshold (go->warn_ram, or the seed's table row for that
 * batch when none was given), printed and stored in c->batch. The plan is
 * exact and linear in the batch, so this needs no trial allocation.
 * Returns -1 with one line in err when RAM cannot be measured or even
 * batch 1 does not fit. */
int batch_fit_auto(run_cfg *c, const unet_backend *be, const guard_opts *go, char *err,
                   size_t len);

/* The largest batch from 1 to max_b whose planned peak, on top of the RAM
 * in use now, stays below the RAM warn threshold (as --batch auto judges
 * it), without printing; 0 when not even batch 1 does, max_b when RAM
 * cannot be measured (nothing to judge by). For --on-memory shrink, after
 * the arena was freed. */
int batch_fit_largest(const run_cfg *c, const unet_backend *be, const guard_opts *go, int max_b);

/* Prints a note when c->batch's plan will reach the warn or stop
 * threshold of cfg (the guard's), so the user learns it in a second
 * rather than at the first check. Training still starts: the monitor
 * stops it safely if the plan was right. */
void batch_fit_note(const run_cfg *c, const unet_backend *be, uint64_t ram_budget,
                    const mg_config *cfg);

/* Refuses (MG_ERANGE, one line in err) a plan at `batch` plus a data set
 * of n samples that exceeds this machine's RAM or its container's limit:
 * it could never run. A plan above the budget or a threshold is 0 (the
 * monitor then stops it with an emergency checkpoint, as the seed did),
 * and so is RAM that cannot be measured. */
int batch_fit_check_plan(const run_cfg *c, const unet_backend *be, int batch, int n,
                         uint64_t ram_budget, char *err, size_t len);

#endif /* UNET_BATCH_FIT_H */
