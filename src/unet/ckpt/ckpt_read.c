/* SPDX-License-Identifier: MIT */
/*
 * ckpt_read.c: reading a checkpoint back (see ckpt.h): the file is loaded
 * once (pth/), every value the trainer will act on is checked
 * against its range before anyone uses it, and only then are the weights
 * uploaded into a model (through its backend: the arena may be a
 * device's). A value out of range, of the wrong type, or a
 * config that disagrees with the weights is refused with one line naming
 * the key; nothing is clamped, truncated or defaulted silently.
 *
 * It does not decide what a run does with the values (train.c compares
 * the epoch with --epochs and the model with the flags) and never writes.
 */
#include "ckpt.h"

#include "errf.h"
#include "memguard.h"
#include "pth.h"
#include "pyval.h"
#include "settings.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ckpt_file {
    pv_arena *a;
    pv *root;
    const pv *sd;    /* the state_dict */
    const pv *state; /* optimizer.state when it has entries, else NULL */
    char *path;      /* for messages */
};

/* What ckpt_open works on: the file and where messages go. */
typedef struct rd {
    const char *path;
    char *err;
    size_t len;
} rd;

static int fail(const rd *r, const char *fmt, ...) UNET_PRINTF(2, 3);
static int fail(const rd *r, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->err && r->len) snprintf(r->err, r->len, "%s: %s", r->path, msg);
    return MG_EPARSE;
}

/* A value as a message shows it: 5, 0.25, 'text', True, None, a list. */
static void show(const pv *v, char *buf, size_t len)
{
    switch (v->kind) {
    case PV_INT: snprintf(buf, len, "%lld", (long long)v->u.i); return;
    case PV_FLOAT: snprintf(buf, len, "%g", v->u.f); return;
    case PV_BOOL: snprintf(buf, len, "%s", v->u.b ? "True" : "False"); return;
    case PV_NONE: snprintf(buf, len, "None"); return;
    case PV_STR: {
        char s[48];
        size_t n = 0;
        for (; v->u.str.s[n] && n + 1 < sizeof s; n++)
            s[n] = isprint((unsigned char)v->u.str.s[n]) ? v->u.str.s[n] : '?';
        s[n] = '\0';
        snprintf(buf, len, "'%s%s'", s, v->u.str.len > n ? "..." : "");
        return;
    }
    case PV_TENSOR: snprintf(buf, len, "a tensor"); return;
    case PV_LIST: snprintf(buf, len, "a list"); return;
    case PV_TUPLE: snprintf(buf, len, "a tuple"); return;
    default: snprintf(buf, len, "a dict"); return;
    }
}

static int bad_value(const rd *r, const char *where, const char *key, const pv *v,
                     const char *allowed)
{
    char s[80];
    show(v, s, sizeof s);
    return fail(r, "%s%s is %s, expected %s", where, key, s, allowed);
}

/* d[key] as an integer (a Python int) in [lo, hi]. 0, 1 when absent, or
 * MG_EPARSE with the message. */
static int int_in(const rd *r, const pv *d, const char *where, const char *key, int64_t lo,
                  int64_t hi, int64_t *out)
{
    const pv *v = pv_get(d, key);
    if (!v) return 1;
    if (v->kind != PV_INT || v->u.i < lo || v->u.i > hi) {
        char allowed[96];
        snprintf(allowed, sizeof allowed, "an integer from %lld to %lld", (long long)lo,
                 (long long)hi);
        return bad_value(r, where, key, v, allowed);
    }
    *out = v->u.i;
    return 0;
}

/* d[key] as a finite number (a Python float or int) in [lo, hi]. */
static int real_in(const rd *r, const pv *d, const char *where, const char *key, double lo,
                   double hi, double *out)
{
    const pv *v = pv_get(d, key);
    if (!v) return 1;
    double x = v->kind == PV_FLOAT ? v->u.f : v->kind == PV_INT ? (double)v->u.i : NAN;
    if (!isfinite(x) || x < lo || x > hi) {
        char allowed[96];
        snprintf(allowed, sizeof allowed, "a number from %g to %g", lo, hi);
        return bad_value(r, where, key, v, allowed);
    }
    *out = x;
    return 0;
}

/* d[key] as a string of fewer than cap bytes, printable ASCII or UTF-8. */
static int str_in(const rd *r, const pv *d, const char *where, const char *key, size_t cap,
                  char *out)
{
    const pv *v = pv_get(d, key);
    if (!v) return 1;
    bool ok = v->kind == PV_STR && v->u.str.len < cap && strlen(v->u.str.s) == v->u.str.len;
    for (size_t i = 0; ok && i < v->u.str.len; i++)
        ok = (unsigned char)v->u.str.s[i] >= 0x20 && v->u.str.s[i] != 0x7f;
    if (!ok) {
        char allowed[96];
        snprintf(allowed, sizeof allowed, "a line of text shorter than %zu bytes", cap);
        return bad_value(r, where, key, v, allowed);
    }
    memcpy(out, v->u.str.s, v->u.str.len + 1);
    return 0;
}

/* ---- the weights -------------------------------------------------------------- */

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

/* The model the weights describe: enc.0.0.weight is [base, in_ch, 3, 3],
 * and there is one enc.N.0.weight per level. */
static int model_of(const rd *r, const pv *sd, unet_cfg *model)
{
    const pv_tensor *w0 = sd ? pv_get_tensor(sd, "enc.0.0.weight", PV_F32, -1, NULL) : NULL;
    if (!w0 || w0->ndim != 4)
        return fail(r, "no UNet state_dict in it (no float32 enc.0.0.weight of 4 dims)");
    if (w0->shape[0] < 1 || w0->shape[0] > 65536 || w0->shape[1] < 1 || w0->shape[1] > 65536)
        return fail(r, "enc.0.0.weight has the shape [%lld, %lld, ...], not a UNet's",
                    (long long)w0->shape[0], (long long)w0->shape[1]);
    model->base = (int)w0->shape[0];
    model->in_ch = (int)w0->shape[1];
    int depth = 0;
    char key[40];
    for (; depth < 64; depth++) {
        snprintf(key, sizeof key, "enc.%d.0.weight", depth);
        if (!pv_get(sd, key)) break;
    }
    model->depth = depth;
    return 0;
}

/* ---- "config" ----------------------------------------------------------------- */

static const char *const cfg_numbers[] = {"in_ch", "base", "depth", "img_size", "batch",
                                          "epochs", "synthetic", "val_split", "lr", "beta1",
                                          "beta2", "eps", "weight_decay"};

/* One range-checked number of "config" (settings.h); synthetic may also
 * be 0 (a folder data set). */
static int cfg_number(const rd *r, const pv *c, const char *key, double *out)
{
    const ut_setting *s = ut_setting_find(key);
    const pv *v = pv_get(c, key);
    if (!v) return 1;
    bool typed = v->kind == PV_INT || (!s->integer && v->kind == PV_FLOAT);
    double x = v->kind == PV_INT ? (double)v->u.i : v->kind == PV_FLOAT ? v->u.f : NAN;
    bool zero_ok = strcmp(key, "synthetic") == 0 && x == 0;
    if (!typed || !(ut_setting_ok(s, x) || zero_ok)) {
        char allowed[96];
        ut_setting_describe(s, allowed, sizeof allowed);
        if (strcmp(key, "synthetic") == 0) strncat(allowed, ", or 0", sizeof allowed - strlen(allowed) - 1);
        return bad_value(r, "config.", key, v, allowed);
    }
    *out = x;
    return 0;
}

/* The model keys of "config" must say what the weights say. */
static int cfg_agrees(const rd *r, const char *key, double said, int weights)
{
    if ((int)said == weights) return 0;
    return fail(r, "config.%s is %d but the weights have %s %d", key, (int)said, key, weights);
}

static int check_config(const rd *r, const pv *c, ckpt_info *info)
{
    int rc;
    for (size_t i = 0; i < sizeof cfg_numbers / sizeof cfg_numbers[0]; i++) {
        double x = 0;
        const char *key = cfg_numbers[i];
        if ((rc = cfg_number(r, c, key, &x)) < 0) return rc;
        if (rc) continue;
        if (strcmp(key, "img_size") == 0) info->img_size = (int)x;
        if (strcmp(key, "in_ch") == 0 && (rc = cfg_agrees(r, key, x, info->model.in_ch))) return rc;
        if (strcmp(key, "base") == 0 && (rc = cfg_agrees(r, key, x, info->model.base))) return rc;
        if (strcmp(key, "depth") == 0 && (rc = cfg_agrees(r, key, x, info->model.depth))) return rc;
    }
    int64_t v;
    char data[1024];
    if ((rc = int_in(r, c, "config.", "seed", INT64_MIN, INT64_MAX, &v)) < 0) return rc;
    const pv *flip = pv_get(c, "flip");
    if (flip && flip->kind != PV_BOOL && !(flip->kind == PV_INT && (flip->u.i == 0 || flip->u.i == 1)))
        return bad_value(r, "config.", "flip", flip, "True or False");
    if ((rc = str_in(r, c, "config.", "data", sizeof data, data)) < 0) return rc;
    return 0;
}

/* ---- "epoch" and "resume" ------------------------------------------------------- */

static int check_loader(const rd *r, const pv *res, run_state *st)
{
    const pv *l = pv_get(res, "loader");
    if (!l) return 0;
    bool ok = l->kind == PV_LIST && pv_len(l) == UNET_LOADER_STATE_WORDS;
    for (size_t k = 0; ok && k < UNET_LOADER_STATE_WORDS; k++) {
        const pv *w = pv_at(l, k);
        ok = w->kind == PV_INT;
        if (ok) st->loader[k] = (uint64_t)w->u.i;
    }
    if (!ok) return bad_value(r, "resume.", "loader", l, "a list of 8 integers");
    return 0;
}

/* metrics_row is the CSV line of epoch st->epoch: "<epoch>,...". */
static int check_row(const rd *r, const pv *res, run_state *st)
{
    int rc = str_in(r, res, "resume.", "metrics_row", sizeof st->metrics_row, st->metrics_row);
    if (rc) return rc < 0 ? rc : 0;
    if (!st->metrics_row[0]) return 0;
    char lead[32];
    snprintf(lead, sizeof lead, "%lld,", (long long)st->epoch);
    if (strncmp(st->metrics_row, lead, strlen(lead)) != 0)
        return fail(r, "resume.metrics_row is not the row of epoch %lld", (long long)st->epoch);
    return 0;
}

static int check_sums(const rd *r, const pv *res, run_state *st)
{
    const char *keys[] = {"epoch_loss_sum", "epoch_bce_sum", "epoch_dice_sum", "epoch_seconds"};
    double *dst[] = {&st->ep_loss, &st->ep_bce, &st->ep_dice, &st->ep_seconds};
    for (int i = 0; i < 4; i++) {
        int rc = real_in(r, res, "resume.", keys[i], 0, 1e300, dst[i]);
        if (rc < 0) return rc;
    }
    int rc = int_in(r, res, "resume.", "epoch_images", 0, UT_MAX_SAMPLES, &st->ep_images);
    return rc < 0 ? rc : 0;
}

static int check_resume(const rd *r, const pv *root, const pv *res, run_state *st)
{
    int rc;
    if ((rc = int_in(r, root, "", "epoch", 0, 1000000, &st->epoch)) < 0) return rc;
    if ((rc = int_in(r, res, "resume.", "batch", 0, UT_MAX_SAMPLES, &st->batch)) < 0) return rc;
    if ((rc = check_loader(r, res, st)) < 0) return rc;
    if ((rc = real_in(r, res, "resume.", "best_dice", -1, 1, &st->best_dice)) < 0) return rc;
    if ((rc = int_in(r, res, "resume.", "best_epoch", -1, st->epoch, &st->best_epoch)) < 0)
        return rc;
    if ((rc = check_sums(r, res, st)) < 0) return rc;
    if ((rc = str_in(r, res, "resume.", "kind", sizeof st->kind, st->kind)) < 0) return rc;
    return check_row(r, res, st);
}

/* ---- the optimiser ------------------------------------------------------------------ */

/* optimizer.state: {index: {"step": n, "exp_avg": ..., ...}}; the step
 * counts must be whole numbers a double holds exactly (the tensors are
 * checked against the model by ckpt_apply). */
static int check_steps(const rd *r, const pv *state)
{
    for (size_t i = 0; i < pv_len(state); i++) {
        const pv *e = pv_val_at(state, i);
        const pv *s = e && e->kind == PV_DICT ? pv_get(e, "step") : NULL;
        double step = NAN;
        if (s) pv_as_float(s, &step);
        if (!(step >= 0 && step <= 9007199254740992.0 && step == floor(step)))
            return fail(r, "optimizer.state entry %zu has no step count from 0 to 2^53", i);
    }
    return 0;
}

static int read_all(const rd *r, ckpt_file *f, ckpt_info *info)
{
    int rc = model_of(r, f->sd, &info->model);
    if (rc || f->root->kind != PV_DICT) return rc;
    const pv *c = pv_get(f->root, "config");
    if (c && (c->kind == PV_DICT || c->kind == PV_ODICT) && (rc = check_config(r, c, info)))
        return rc;
    const pv *opt = pv_get(f->root, "optimizer");
    const pv *state = opt && opt->kind == PV_DICT ? pv_get(opt, "state") : NULL;
    if (state && state->kind == PV_DICT && pv_len(state) > 0) {
        if ((rc = check_steps(r, state))) return rc;
        f->state = state;
        info->has_opt = true;
    }
    const pv *res = pv_get(f->root, "resume");
    if (!res || res->kind != PV_DICT) return 0;
    info->has_run = true;
    return check_resume(r, f->root, res, &info->st);
}

int ckpt_open(const char *path, ckpt_file **out, ckpt_info *info, char *err, size_t err_len)
{
    *out = NULL;
    memset(info, 0, sizeof *info);
    info->st.best_dice = -1;
    info->st.best_epoch = -1;
    ckpt_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        snprintf(err, err_len, "%s: out of memory", path);
        return MG_ENOMEM;
    }
    rd r = {f->path, err, err_len};
    int rc = pth_load(path, &f->a, &f->root, err, err_len);
    if (rc == 0) {
        f->sd = state_dict_of(f->root);
        rc = f->sd ? read_all(&r, f, info)
                   : fail(&r, "no state_dict in it (expected a dict with \"model\" or a bare "
                              "state_dict)");
    }
    if (rc) {
        ckpt_close(f);
        run_state clean = {.best_dice = -1, .best_epoch = -1};
        info->st = clean;
        info->has_run = info->has_opt = false;
        return rc;
    }
    *out = f;
    return 0;
}

void ckpt_close(ckpt_file *f)
{
    if (!f) return;
    pv_arena_free(f->a);
    free(f->path);
    free(f);
}

/* ---- into the model ------------------------------------------------------------------ */

/* Every parameter and buffer of m is in the state_dict with its dtype and
 * shape, and nothing else is. */
static int check_weights(const rd *r, const pv *sd, const unet *m)
{
    size_t expected = 0;
    for (int i = 0; i < m->nparams; i++) {
        const param *p = &m->p[i];
        const pv *v = pv_get(sd, p->name);
        if (!v || v->kind != PV_TENSOR)
            return fail(r, "missing %s (the file's model differs: depth %d, base %d, %d input "
                        "channels expected)", p->name, m->cfg.depth, m->cfg.base, m->cfg.in_ch);
        const pv_tensor *t = &v->u.t;
        pv_dtype want = p->kind == PARAM_BN_COUNT ? PV_I64 : PV_F32;
        bool ok = t->dtype == want && t->ndim == p->ndim;
        for (int d = 0; ok && d < p->ndim; d++) ok = t->shape[d] == p->dims[d];
        if (!ok)
            return fail(r, "%s is %s with %d dims; expected %s [%d,%d,%d,%d]", p->name,
                        pv_dtype_name(t->dtype), t->ndim, pv_dtype_name(want), p->dims[0],
                        p->dims[1], p->dims[2], p->dims[3]);
        expected++;
    }
    if (pv_len(sd) != expected)
        return fail(r, "the state_dict has %zu entries, the model %zu (unexpected keys)",
                    pv_len(sd), expected);
    return 0;
}

static int check_moments(const rd *r, const pv *state, const unet *m)
{
    for (int i = 0; state && i < m->nparams; i++) {
        const param *p = &m->p[i];
        if (p->trainable < 0) continue;
        const pv *e = pv_get_i(state, p->trainable);
        int64_t dims[4];
        for (int d = 0; d < p->ndim; d++) dims[d] = p->dims[d];
        if (!e || !pv_get_tensor(e, "exp_avg", PV_F32, p->ndim, dims) ||
            !pv_get_tensor(e, "exp_avg_sq", PV_F32, p->ndim, dims) || !pv_get(e, "step"))
            return fail(r, "optimizer state of %s (parameter %d) is missing or has the wrong "
                        "shape", p->name, p->trainable);
    }
    return 0;
}

static void copy_moments(const pv *state, unet *m)
{
    double step = 0;
    for (int i = 0; i < m->nparams; i++) {
        const param *p = &m->p[i];
        if (p->trainable < 0) continue;
        const pv *e = pv_get_i(state, p->trainable);
        m->be->upload(m->adam_m + p->off, pv_get(e, "exp_avg")->u.t.data, p->numel * sizeof(float));
        m->be->upload(m->adam_v + p->off, pv_get(e, "exp_avg_sq")->u.t.data,
                      p->numel * sizeof(float));
        pv_as_float(pv_get(e, "step"), &step); /* range-checked by ckpt_open */
    }
    m->adam_step = (int64_t)step;
}

int ckpt_apply(const ckpt_file *f, unet *m, char *err, size_t err_len)
{
    rd r = {f->path, err, err_len};
    int rc = check_weights(&r, f->sd, m);
    if (rc == 0) rc = check_moments(&r, f->state, m);
    if (rc) return rc;
    for (int i = 0; i < m->nparams; i++) {
        const param *p = &m->p[i];
        const pv_tensor *t = &pv_get(f->sd, p->name)->u.t;
        if (p->kind == PARAM_BN_COUNT) m->be->upload(m->counts + p->off, t->data, sizeof(int64_t));
        else m->be->upload(m->params + p->off, t->data, p->numel * sizeof(float));
    }
    if (f->state) {
        copy_moments(f->state, m);
    } else {
        m->be->zero(m->adam_m, m->plan.params_floats * sizeof(float));
        m->be->zero(m->adam_v, m->plan.params_floats * sizeof(float));
        m->adam_step = 0;
    }
    return 0;
}
