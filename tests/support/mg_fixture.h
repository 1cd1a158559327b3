/* SPDX-License-Identifier: MIT */
/*
 * mg_fixture.h: the setup the policy and report tests share: byte units and
 * a configuration with every field the policy and the reports read set
 * explicitly to the seed's numbers.
 *
 * The fields are filled one by one, not through mg_config_resolve(), so the
 * tests that use it do not depend on the library's own defaulting. It holds
 * no snapshots or verdicts: each test file builds those for what it checks.
 */
#ifndef MG_FIXTURE_H
#define MG_FIXTURE_H

#include "memguard.h"

#include <string.h>

#define GIB (1ull << 30)
#define MIB (1ull << 20)

/* Every field the policy reads, set explicitly to the seed's numbers. */
static inline mg_config cfg_seed(void)
{
    mg_config c;
    memset(&c, 0, sizeof c);
    c.warn_gpu_frac = 0.90;
    c.stop_gpu_frac = 0.92;
    c.warn_ram_frac = 0.85;
    c.stop_ram_frac = 0.88;
    c.check_train_every = 10;
    c.check_eval_every = 15;
    c.hysteresis_frac = 0.02;
    c.min_interval_ms = 100;
    c.max_interval_ms = 1000;
    c.ram_fill_rate_bytes_per_s = 6000ull * MIB;
    c.swap_fill_rate_bytes_per_s = 800ull * MIB;
    c.gpu_fill_rate_bytes_per_s = 10ull * GIB;
    return c;
}

#endif /* MG_FIXTURE_H */
