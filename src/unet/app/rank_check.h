/* SPDX-License-Identifier: MIT */
/*
 * rank_check.h: the settings every rank of a data-parallel run must
 * share, compared with rank 0's at start-up. Under mpirun each rank
 * parses its own command line (mpirun's colon syntax gives ranks their
 * own flags, which is how a rank gets its own memory budget), so nothing
 * else stops rank 1 from running --epochs 2 against rank 0's 1 (rank 1
 * then waits forever in a collective rank 0 never joins), another --seed
 * (another global order: the shards overlap, training is silently
 * wrong), another --batch or model (collectives of other sizes), or
 * another --resume file (other weights).
 *
 * Compared: the model, --img-size, --batch, --epochs, the optimiser,
 * --val-split, --seed, --flip, --sync-bn, the number of samples (not the
 * --data path: machines may mount one share at other paths), and the
 * state the run starts from (epoch, batch, Adam's step, a hash of the
 * weights and both moments: the --resume file, or the seed's weights).
 * Not compared: the memory guard's settings, --threads, --out, --progress,
 * --precision (a node without AVX512_BF16 may train in float32: the
 * results differ in rounding only).
 *
 * Not here: the start-up itself and how its failure is said once
 * (train.c), the collectives (dist/).
 */
#ifndef UNET_RANK_CHECK_H
#define UNET_RANK_CHECK_H

#include "dist.h"
#include "model.h"
#include "run_state.h"

#include <stdbool.h>
#include <stddef.h>

/* Every rank calls it once, after its start-up succeeded on every rank
 * (a collective: rank 0's values go to all). 0 when this rank's settings
 * are rank 0's, else MG_EINVAL with one line in err naming the first
 * setting that differs and both values. A group of one returns 0. */
int rank_check(dist *d, const run_cfg *c, bool sync_bn, int samples, const run_state *st,
               const unet *m, char *err, size_t len);

#endif /* UNET_RANK_CHECK_H */
