/* SPDX-License-Identifier: MIT */
/*
 * ckpt.c: the trainer's checkpoint dict (see ckpt.h) on top of the .pth
 * writer and reader. The writer's tree is built once and points at the
 * model's arrays, so a save copies no tensor and allocates nothing; the
 * reader validates everything before it touches the model.
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
    pv *ep_loss, *ep_bce, *ep_dice, *ep_seconds, *ep_images;
    void *scratch;
    size_t scratch_len;
};

static pv *tensor_of(pv_arena *a, const param *p, const void *data)
{
    int64_t dims[4];
    for (int i = 0; i < p->ndim; i++) dims[i] = p->dims[i];
    return pv_tensor_new(a, p->kind == PK_BN_COUNT ? PV_I64 : PV_F32, p->ndim, dims, data);
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

ckpt_writer *ckpt_writer_new(const unet *m, const run_cfg *cfg, char *err, size_t err_len)
{
    ckpt_writer *w = calloc(1, sizeof *w);
    pv_arena *a = w ? pv_arena_new() : NULL;
    if (!a) goto oom;
    w->arena = a;
    w->m = m;
    pv *root = pv_dict(a), *model = pv_odict(a), *opt = pv_dict(a), *state = pv_dict(a);
    pv *groups = pv_list(a), *group = pv_dict(a), *params = pv_list(a), *betas = pv_tuple(a);
    if (!root || !model || !opt || !state || !groups || !group || !params || !betas) goto oom;
    for (int i = 0; i < m->nparams; i++) {
        const param *p = &m->p[i];
        const void *data = p->kind == PK_BN_COUNT ? (const void *)&m->counts[p->off]
                                                  : (const void *)(m->params + p->off);
        SET(model, p->name, tensor_of(a, p, data));
        if (p->trainable < 0) continue;
        pv *st = pv_dict(a);
        if (!st) goto oom;
        SET(st, "step", pv_tensor_new(a, PV_F32, 0, NULL, &w->step_f));
        SET(st, "exp_avg", tensor_of(a, p, m->adam_m + p->off));
        SET(st, "exp_avg_sq", tensor_of(a, p, m->adam_v + p->off));
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
    /* Room for the longest kind, rewritten in place at each save. */
    SET(resume, "kind", w->kind = pv_str(a, "emergency-emergency-emergency-0"));

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
    free(w);
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
    size_t n = strnlen(st->kind, KIND_CAP);
    memcpy(w->kind->u.str.s, st->kind, n);
    w->kind->u.str.s[n] = '\0';
    w->kind->u.str.len = n;
    return pth_save(path, w->root, w->scratch, w->scratch_len, NULL, err, err_len);
}

/* ---- reading ------------------------------------------------------------------ */

/* The state_dict inside a loaded file: the file itself (a bare state_dict)
 * or its "model" entry. */
static const pv *state_dict_of(const pv *root)
{
    if (!root) return NULL;
    if (root->kind == PV_DICT || root->kind == PV_ODICT) {
        const pv *m = pv_get(root, "model");
        if (m && (m->kind == PV_DICT || m->kind == PV_ODICT)) return m;
        if (pv_get(root, "enc.0.0.weight")) return root;
        const pv *s = pv_get(root, "state_dict"); /* Lightning-style */
        if (s && (s->kind == PV_DICT || s->kind == PV_ODICT)) return s;
    }
    return NULL;
}

int ckpt_peek(const char *path, unet_cfg *model, char *err, size_t err_len)
{
    pv_arena *a;
    pv *root;
    int rc = pth_load(path, &a, &root, err, err_len);
    if (rc < 0) return rc;
    const pv *sd = state_dict_of(root);
    const pv_tensor *w0 = sd ? pv_get_tensor(sd, "enc.0.0.weight", PV_F32, -1, NULL) : NULL;
    if (!w0 || w0->ndim != 4) {
        snprintf(err, err_len, "%s: no UNet state_dict (no enc.0.0.weight) in it", path);
        pv_arena_free(a);
        return MG_EPARSE;
    }
    model->base = (int)w0->shape[0];
    model->in_ch = (int)w0->shape[1];
    int depth = 0;
    char key[40];
    for (;;) {
        snprintf(key, sizeof key, "enc.%d.0.weight", depth);
        if (!pv_get(sd, key)) break;
        depth++;
    }
    model->depth = depth;
    pv_arena_free(a);
    return 0;
}

static int get_i(const pv *d, const char *k, int64_t *out)
{
    const pv *v = pv_get(d, k);
    return v ? pv_as_int(v, out) : -1;
}

static int get_f(const pv *d, const char *k, double *out)
{
    const pv *v = pv_get(d, k);
    return v ? pv_as_float(v, out) : -1;
}

static void read_cfg(const pv *c, run_cfg *cfg)
{
    int64_t v;
    double f;
    if (!get_i(c, "in_ch", &v)) cfg->model.in_ch = (int)v;
    if (!get_i(c, "base", &v)) cfg->model.base = (int)v;
    if (!get_i(c, "depth", &v)) cfg->model.depth = (int)v;
    if (!get_i(c, "img_size", &v)) cfg->img_size = (int)v;
    if (!get_i(c, "batch", &v)) cfg->batch = (int)v;
    if (!get_i(c, "epochs", &v)) cfg->epochs = (int)v;
    if (!get_f(c, "lr", &f)) cfg->lr = f;
    if (!get_f(c, "beta1", &f)) cfg->beta1 = f;
    if (!get_f(c, "beta2", &f)) cfg->beta2 = f;
    if (!get_f(c, "eps", &f)) cfg->eps = f;
    if (!get_f(c, "weight_decay", &f)) cfg->weight_decay = f;
    if (!get_f(c, "val_split", &f)) cfg->val_split = f;
    if (!get_i(c, "seed", &v)) cfg->seed = (uint64_t)v;
    if (!get_i(c, "flip", &v)) cfg->flip = (int)v;
    if (!get_i(c, "synthetic", &v)) cfg->synthetic = (int)v;
    const char *s = pv_as_str(pv_get(c, "data"));
    if (s) snprintf(cfg->data, sizeof cfg->data, "%s", s);
}

int ckpt_load(const char *path, unet *m, run_cfg *cfg, run_state *st, int *have_opt,
              int *have_run, char *err, size_t err_len)
{
    pv_arena *a;
    pv *root;
    int rc = pth_load(path, &a, &root, err, err_len);
    if (rc < 0) return rc;
    *have_opt = *have_run = 0;
    const pv *sd = state_dict_of(root);
    rc = MG_EPARSE;
    if (!sd) {
        snprintf(err, err_len, "%s: no state_dict in it (expected a dict with \"model\" or a bare state_dict)",
                 path);
        goto out;
    }
    /* Validate every entry before copying anything. */
    size_t expected = 0;
    for (int i = 0; i < m->nparams; i++) {
        const param *p = &m->p[i];
        const pv *v = pv_get(sd, p->name);
        if (!v || v->kind != PV_TENSOR) {
            snprintf(err, err_len, "%s: missing %s (the file's model differs: depth %d, base %d, "
                     "%d input channels expected)", path, p->name, m->cfg.depth, m->cfg.base,
                     m->cfg.in_ch);
            goto out;
        }
        const pv_tensor *t = &v->u.t;
        pv_dtype want = p->kind == PK_BN_COUNT ? PV_I64 : PV_F32;
        bool ok = t->dtype == want && t->ndim == p->ndim;
        for (int d = 0; ok && d < p->ndim; d++) ok = t->shape[d] == p->dims[d];
        if (!ok) {
            snprintf(err, err_len, "%s: %s is %s with %d dims%s; expected %s [%d,%d,%d,%d]",
                     path, p->name, pv_dtype_name(t->dtype), t->ndim,
                     t->ndim >= 1 ? "" : "", pv_dtype_name(want), p->dims[0], p->dims[1],
                     p->dims[2], p->dims[3]);
            goto out;
        }
        expected++;
    }
    if (pv_len(sd) != expected) {
        snprintf(err, err_len, "%s: the state_dict has %zu entries, the model %zu (unexpected keys)",
                 path, pv_len(sd), expected);
        goto out;
    }
    const pv *opt = root->kind == PV_DICT ? pv_get(root, "optimizer") : NULL;
    const pv *state = opt ? pv_get(opt, "state") : NULL;
    bool use_opt = state && pv_len(state) > 0;
    for (int i = 0; use_opt && i < m->nparams; i++) {
        const param *p = &m->p[i];
        if (p->trainable < 0) continue;
        const pv *e = pv_get_i(state, p->trainable);
        int64_t dims[4];
        for (int d = 0; d < p->ndim; d++) dims[d] = p->dims[d];
        double step;
        if (!e || !pv_get_tensor(e, "exp_avg", PV_F32, p->ndim, dims) ||
            !pv_get_tensor(e, "exp_avg_sq", PV_F32, p->ndim, dims) || get_f(e, "step", &step)) {
            snprintf(err, err_len, "%s: optimizer state of %s (parameter %d) is missing or has "
                     "the wrong shape", path, p->name, p->trainable);
            goto out;
        }
    }
    /* All valid: copy. */
    for (int i = 0; i < m->nparams; i++) {
        const param *p = &m->p[i];
        const pv_tensor *t = &pv_get(sd, p->name)->u.t;
        if (p->kind == PK_BN_COUNT) memcpy(&m->counts[p->off], t->data, sizeof(int64_t));
        else memcpy(m->params + p->off, t->data, p->numel * sizeof(float));
    }
    if (use_opt) {
        double step = 0;
        for (int i = 0; i < m->nparams; i++) {
            const param *p = &m->p[i];
            if (p->trainable < 0) continue;
            const pv *e = pv_get_i(state, p->trainable);
            memcpy(m->adam_m + p->off, pv_get(e, "exp_avg")->u.t.data, p->numel * sizeof(float));
            memcpy(m->adam_v + p->off, pv_get(e, "exp_avg_sq")->u.t.data,
                   p->numel * sizeof(float));
            get_f(e, "step", &step);
        }
        m->adam_step = (int64_t)step;
        *have_opt = 1;
    } else {
        memset(m->adam_m, 0, m->plan.params_floats * sizeof(float));
        memset(m->adam_v, 0, m->plan.params_floats * sizeof(float));
        m->adam_step = 0;
    }
    if (root->kind == PV_DICT) {
        const pv *c = pv_get(root, "config");
        const pv *r = pv_get(root, "resume");
        int64_t v;
        if (cfg && c && (c->kind == PV_DICT || c->kind == PV_ODICT)) read_cfg(c, cfg);
        if (st) {
            memset(st, 0, sizeof *st);
            st->best_dice = -1;
            st->best_epoch = -1;
            if (!get_i(root, "epoch", &v)) st->epoch = v;
            if (r && r->kind == PV_DICT) {
                if (!get_i(r, "batch", &v)) st->batch = v;
                const pv *l = pv_get(r, "loader");
                for (size_t k = 0; l && k < pv_len(l) && k < UNET_LOADER_STATE_WORDS; k++)
                    if (!pv_as_int(pv_at(l, k), &v)) st->loader[k] = (uint64_t)v;
                get_f(r, "best_dice", &st->best_dice);
                if (!get_i(r, "best_epoch", &v)) st->best_epoch = v;
                get_f(r, "epoch_loss_sum", &st->ep_loss);
                get_f(r, "epoch_bce_sum", &st->ep_bce);
                get_f(r, "epoch_dice_sum", &st->ep_dice);
                get_f(r, "epoch_seconds", &st->ep_seconds);
                if (!get_i(r, "epoch_images", &v)) st->ep_images = v;
                const char *k = pv_as_str(pv_get(r, "kind"));
                if (k) snprintf(st->kind, sizeof st->kind, "%s", k);
                *have_run = 1;
            }
        }
    }
    rc = 0;
out:
    pv_arena_free(a);
    return rc;
}
