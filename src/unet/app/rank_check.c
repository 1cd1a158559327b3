/* SPDX-License-Identifier: MIT */
/*
 * rank_check.c: rank_check.h: this rank's settings as a row of 64-bit
 * values (reals by their bits, so equal means bitwise equal), rank 0's row
 * broadcast, and the first difference said in one line. The weights and
 * Adam's moments go in as one FNV-1a hash, so a differing --resume file
 * costs one pass over them at start-up, not a broadcast of the model.
 * Not here: which rank says the line (train.c), the collectives (dist/).
 */
#include "rank_check.h"

#include "memguard.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* How a value of the row is shown in the message. */
enum { V_INT, V_REAL, V_FLAG, V_HASH };

static const struct field {
    const char *name;
    int how;
} fields[] = {
    {"--in-ch", V_INT},        {"--base", V_INT},          {"--depth", V_INT},
    {"--img-size", V_INT},     {"--batch", V_INT},         {"--epochs", V_INT},
    {"--lr", V_REAL},          {"--beta1", V_REAL},        {"--beta2", V_REAL},
    {"--eps", V_REAL},         {"--weight-decay", V_REAL}, {"--val-split", V_REAL},
    {"--seed", V_INT},         {"--flip", V_FLAG},         {"--sync-bn", V_FLAG},
    {"the samples of --data or --synthetic", V_INT},
    {"the epochs done (--resume)", V_INT},
    {"the batches done in the epoch (--resume)", V_INT},
    {"Adam's steps (--resume)", V_INT},
    {"the weights and Adam's moments (--resume), hashed", V_HASH},
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

static uint64_t real_bits(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

/* FNV-1a, 64 bits, over n floats, continuing from h. */
static uint64_t hash_floats(uint64_t h, const float *p, size_t n)
{
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n * sizeof(float); i++) h = (h ^ b[i]) * 0x100000001b3u;
    return h;
}

static void fill(uint64_t v[N_FIELDS], const run_cfg *c, bool sync_bn, int samples,
                 const run_state *st, const unet *m)
{
    size_t n = m->plan.params_floats;
    uint64_t h = hash_floats(0xcbf29ce484222325u, m->params, n);
    h = hash_floats(hash_floats(h, m->adam_m, n), m->adam_v, n);
    const uint64_t row[N_FIELDS] = {
        (uint64_t)c->model.in_ch, (uint64_t)c->model.base, (uint64_t)c->model.depth,
        (uint64_t)c->img_size,    (uint64_t)c->batch,      (uint64_t)c->epochs,
        real_bits(c->lr),         real_bits(c->beta1),     real_bits(c->beta2),
        real_bits(c->eps),        real_bits(c->weight_decay), real_bits(c->val_split),
        c->seed,                  (uint64_t)(c->flip != 0), (uint64_t)sync_bn,
        (uint64_t)samples,        (uint64_t)st->epoch,     (uint64_t)st->batch,
        (uint64_t)m->adam_step,   h};
    memcpy(v, row, sizeof row);
}

static void show(char *buf, size_t len, int how, uint64_t v)
{
    double r;
    memcpy(&r, &v, sizeof r);
    if (how == V_REAL) snprintf(buf, len, "%.17g", r);
    else if (how == V_FLAG) snprintf(buf, len, "%s", v ? "on" : "off");
    else if (how == V_HASH) snprintf(buf, len, "%016" PRIx64, v);
    else snprintf(buf, len, "%" PRIu64, v);
}

int rank_check(dist *d, const run_cfg *c, bool sync_bn, int samples, const run_state *st,
               const unet *m, char *err, size_t len)
{
    if (dist_size(d) == 1) return 0;
    uint64_t mine[N_FIELDS], lead[N_FIELDS];
    fill(mine, c, sync_bn, samples, st, m);
    memcpy(lead, mine, sizeof lead);
    dist_bcast(d, lead, sizeof lead);
    for (size_t i = 0; i < N_FIELDS; i++) {
        if (mine[i] == lead[i]) continue;
        char a[32], b[32];
        show(a, sizeof a, fields[i].how, mine[i]);
        show(b, sizeof b, fields[i].how, lead[i]);
        snprintf(err, len, "%s: rank %d has %s, rank 0 %s; every rank must train with the same "
                 "settings (only the memory guard's may differ)", fields[i].name, dist_rank(d),
                 a, b);
        return MG_EINVAL;
    }
    return 0;
}
