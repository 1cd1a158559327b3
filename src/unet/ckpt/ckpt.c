/* SPDX-License-Identifier: MIT */
/*
 * ckpt.c: writing the trainer's checkpoint dict (see ckpt.h) with the .pth
 * writer. The writer's tree is built once and points at the model's
 * arrays when the backend lets the host read them, else at a host mirror
 * of the parameters, Adam's moments and BN's counters reserved here, into
 * which a save downloads them first (llm.c's device_to_file, without its
 * allocation); either way a save allocates nothing. Reading it back, with
 * every value checked, is ckpt_read.c.
 */
#include "ckpt.h"

#include "memguard.h"
#include "pth.h"
#include "pyval.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KIND_CAP 31

struct ckpt_writer {
    pv_arena *arena;
    pv *root;
    const unet *m;
    float step_f;             /* Adam's "step", a float32 0-d tensor in torch 1.13 */
    pv *epoch, *batch, *best_dice, *best_epoch, *kind;
    pv *loader[UNET_LOADER_STATE_WORDS];
    pv *ep_loss, *ep_bce, *ep_dice, *ep_seconds, *ep_images, *row;
    void *scratch;
    size_t scratch_len;
    /* The host mirror (NULL when the backend is host-visible): params,
     * adam_m, adam_v (params_floats each), then the counters. */
    void *mirror;
    size_t mirror_len;
    float *params, *adam_m, *adam_v;
    int64_t *counts;
};

static pv *tensor_of(pv_arena *a, const param *p, const void *data)
{
    int64_t dims[4];
    for (int i = 0; i < p->ndim; i++) dims[i] = p->dims[i];
    return pv_tensor_new(a, p->kind == PARAM_BN_COUNT ? PV_I64 : PV_F32, p->ndim, dims, data);
}

/* Adds key -> value, failing the whole build on the first error. */
#define SET(dict, key, val)                                                     \
    do {                                                                        \
        pv *v_ = (val);                                                         \
        if (!v_ || pv_set_s(a, (dict), (key), v_) != 0) goto oom;               \
    } while (0)

static pv *config_dict(pv_arena *a, const run_cfg *c)
{
    pv *d = pv_dict(a);
    if (!d) return NULL;
    SET(d, "in_ch", pv_int(a, c->model.in_ch));
    SET(d, "base", pv_int(a, c->model.base));
    SET(d, "depth", pv_int(a, c->model.depth));
    SET(d, "img_size", pv_int(a, c->img_size));
    SET(d, "batch", pv_int(a, c->batch));
    SET(d, "epochs", pv_int(a, c->epochs));
    SET(d, "lr", pv_float(a, c->lr));
    SET(d, "beta1", pv_float(a, c->beta1));
    SET(d, "beta2", pv_float(a, c->beta2));
    SET(d, "eps", pv_float(a, c->eps));
    SET(d, "weight_decay", pv_float(a, c->weight_decay));
    SET(d, "val_split", pv_float(a, c->val_split));
    SET(d, "seed", pv_int(a, (int64_t)c->seed));
    SET(d, "flip", pv_bool(a, c->flip));
    SET(d, "synthetic", pv_int(a, c->synthetic));
    SET(d, "data", pv_str(a, c->data));
    return d;
oom:
    return NULL;
}

/* Where the tree's tensors point: the model's arrays when the host may
 * read them, else a mirror reserved now. 0 or -1 (no memory). */
static int place_tensors(ckpt_writer *w, const unet *m)
{
    const unet_backend *be = m->be;
    if (be->host_visible) {
        w->params = m->params;
        w->adam_m = m->adam_m;
        w->adam_v = m->adam_v;
        w->counts = m->counts;
        return 0;
    }
    size_t pf = m->plan.params_floats * sizeof(float);
    size_t at = (3 * pf + sizeof(int64_t) - 1) / sizeof(int64_t) * sizeof(int64_t);
    w->mirror_len = at + (size_t)m->plan.ncounts * sizeof(int64_t);
    w->mirror = be->alloc_host(w->mirror_len);
    if (!w->mirror) return -1;
    w->params = w->mirror;
    w->adam_m = w->params + m->plan.params_floats;
    w->adam_v = w->adam_m + m->plan.params_floats;
    w->counts = (int64_t *)(void *)((char *)w->mirror + at);
    return 0;
}

/* The model's state into the mirror, when there is one. */
static void download_state(const ckpt_writer *w)
{
    const unet *m = w->m;
    if (!w->mirror) return;
    size_t pf = m->plan.params_floats * sizeof(float);
    m->be->download(w->params, m->params, pf);
    m->be->download(w->adam_m, m->adam_m, pf);
    m->be->download(w->adam_v, m->adam_v, pf);
    m->be->download(w->counts, m->counts, (size_t)m->plan.ncounts * sizeof(int64_t));
}

ckpt_writer *ckpt_writer_new(const unet *m, const run_cfg *cfg, char *err, size_t err_len)
{
    ckpt_writer *w = calloc(1, sizeof *w);
    pv_arena *a = w ? pv_arena_new() : NULL;
    if (!a) goto oom;
    w->arena = a;
    w->m = m;
    if (place_tensors(w, m) < 0) goto oom;
    pv *root = pv_dict(a), *model = pv_odict(a), *opt = pv_dict(a), *state = pv_dict(a);
    pv *groups = pv_list(a), *group = pv_dict(a), *params = pv_list(a), *betas = pv_tuple(a);
    if (!root || !model || !opt || !state || !groups || !group || !params || !betas) goto oom;
    for (int i = 0; i < m->nparams; i++) {
        const param *p = &m->p[i];
        const void *data = p->kind == PARAM_BN_COUNT ? (const void *)(w->counts + p->off)
                                                  : (const void *)(w->params + p->off);
        SET(model, p->name, tensor_of(a, p, data));
        if (p->trainable < 0) continue;
        pv *st = pv_dict(a);
        if (!st) goto oom;
        SET(st, "step", pv_tensor_new(a, PV_F32, 0, NULL, &w->step_f));
        SET(st, "exp_avg", tensor_of(a, p, w->adam_m + p->off));
        SET(st, "exp_avg_sq", tensor_of(a, p, w->adam_v + p->off));
        if (pv_set_i(a, state, p->trainable, st) != 0) goto oom;
        pv *idx = pv_int(a, p->trainable);
        if (!idx || pv_append(params, idx) != 0) goto oom;
    }
    /* torch 1.13's Adam param_group, key for key. */
    SET(group, "lr", pv_float(a, cfg->lr));
    pv *b1 = pv_float(a, cfg->beta1), *b2 = pv_float(a, cfg->beta2);
    if (!b1 || !b2 || pv_append(betas, b1) || pv_append(betas, b2)) goto oom;
    SET(group, "betas", betas);
    SET(group, "eps", pv_float(a, cfg->eps));
    SET(group, "weight_decay", pv_float(a, cfg->weight_decay));
    SET(group, "amsgrad", pv_bool(a, 0));
    SET(group, "maximize", pv_bool(a, 0));
    SET(group, "foreach", pv_none(a));
    SET(group, "capturable", pv_bool(a, 0));
    SET(group, "differentiable", pv_bool(a, 0));
    SET(group, "fused", pv_bool(a, 0));
    SET(group, "params", params);
    if (pv_append(groups, group) != 0) goto oom;
    SET(opt, "state", state);
    SET(opt, "param_groups", groups);

    pv *resume = pv_dict(a), *loader = pv_list(a);
    if (!resume || !loader) goto oom;
    for (int i = 0; i < UNET_LOADER_STATE_WORDS; i++) {
        if (!(w->loader[i] = pv_int(a, 0)) || pv_append(loader, w->loader[i]) != 0) goto oom;
    }
    SET(resume, "batch", w->batch = pv_int(a, 0));
    SET(resume, "loader", loader);
    SET(resume, "best_dice", w->best_dice = pv_float(a, -1.0));
    SET(resume, "best_epoch", w->best_epoch = pv_int(a, -1));
    SET(resume, "epoch_loss_sum", w->ep_loss = pv_float(a, 0));
    SET(resume, "epoch_bce_sum", w->ep_bce = pv_float(a, 0));
    SET(resume, "epoch_dice_sum", w->ep_dice = pv_float(a, 0));
    SET(resume, "epoch_seconds", w->ep_seconds = pv_float(a, 0));
    SET(resume, "epoch_images", w->ep_images = pv_int(a, 0));
    /* Room for the longest kind and row, rewritten in place at each save. */
    SET(resume, "kind", w->kind = pv_str(a, "emergency-emergency-emergency-0"));
    char wide[UT_ROW_CAP];
    memset(wide, 'x', sizeof wide - 1);
    wide[sizeof wide - 1] = '\0';
    SET(resume, "metrics_row", w->row = pv_str(a, wide));

    SET(root, "model", model);
    SET(root, "optimizer", opt);
    SET(root, "epoch", w->epoch = pv_int(a, 0));
    SET(root, "config", config_dict(a, cfg));
    SET(root, "resume", resume);
    w->root = root;

    /* The pickle's size depends on the scalars' widths: measure with the
     * widest values they can take, plus a margin. */
    w->epoch->u.i = INT64_MAX;
    w->batch->u.i = INT64_MAX;
    w->best_epoch->u.i = INT64_MAX;
    w->ep_images->u.i = INT64_MAX;
    for (int i = 0; i < UNET_LOADER_STATE_WORDS; i++) w->loader[i]->u.i = INT64_MIN;
    size_t need = pth_save_scratch(root, NULL);
    if (need == 0) {
        snprintf(err, err_len, "checkpoint: cannot describe the model as a .pth tree");
        ckpt_writer_free(w);
        return NULL;
    }
    w->scratch_len = need + 4096;
    w->scratch = malloc(w->scratch_len);
    if (!w->scratch) goto oom;
    return w;
oom:
    snprintf(err, err_len, "checkpoint: out of memory building the checkpoint writer");
    ckpt_writer_free(w);
    return NULL;
}

void ckpt_writer_free(ckpt_writer *w)
{
    if (!w) return;
    pv_arena_free(w->arena);
    free(w->scratch);
    if (w->mirror) w->m->be->free_host(w->mirror, w->mirror_len);
    free(w);
}

/* Rewrites a string node made wide enough at build time. */
static void set_str(pv *v, const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    memcpy(v->u.str.s, s, n);
    v->u.str.s[n] = '\0';
    v->u.str.len = n;
}

int ckpt_save(ckpt_writer *w, const char *path, const run_state *st, char *err, size_t err_len)
{
    w->step_f = (float)w->m->adam_step;
    w->epoch->u.i = st->epoch;
    w->batch->u.i = st->batch;
    for (int i = 0; i < UNET_LOADER_STATE_WORDS; i++) w->loader[i]->u.i = (int64_t)st->loader[i];
    w->best_dice->u.f = st->best_dice;
    w->best_epoch->u.i = st->best_epoch;
    w->ep_loss->u.f = st->ep_loss;
    w->ep_bce->u.f = st->ep_bce;
    w->ep_dice->u.f = st->ep_dice;
    w->ep_seconds->u.f = st->ep_seconds;
    w->ep_images->u.i = st->ep_images;
    set_str(w->kind, st->kind, KIND_CAP);
    set_str(w->row, st->metrics_row, UT_ROW_CAP - 1);
    download_state(w);
    return pth_save(path, w->root, w->scratch, w->scratch_len, NULL, err, err_len);
}

