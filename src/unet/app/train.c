/* SPDX-License-Identifier: MIT */
/*
 * train.c: the training loop of unet-train: data set and split, epochs of
 * training batches and a validation pass (loss, Dice, IoU), and the
 * last.pth / best.pth checkpoints, written atomically, each epoch's
 * metrics.csv row after them. The memory guard (guard.c) is asked at every
 * batch boundary of both loops; when it says stop, the loop writes
 * emergency_epochN.pth from the buffers it already has, marks the stop in
 * curves.svg and exits with 75, or with --on-memory shrink goes on at a
 * smaller batch from the same sample (shrink.c).
 *
 * Start-up checks everything that can be checked before it costs memory
 * or touches --out: the --resume file's values, the data set's size, and
 * a memory plan that no RAM limit of this machine could hold (exit 2).
 *
 * Data parallel (dist/, under mpirun): every rank runs this loop on its
 * shard of each global batch; the gradients are summed after backward,
 * the loss sums and the guard's stop are agreed at every batch boundary,
 * and only rank 0 prints the progress and writes --out (checkpoints,
 * metrics.csv, curves.svg). The start is agreed in steps (every rank's
 * start-up, the settings every rank must share, rank 0's first writes
 * into --out), each failure said once by the lowest rank that had it.
 *
 * It owns the order of things, not their substance: the model (model/)
 * and its backend (the CPU's, cpu/, unless train_opts names another), the
 * data (data/), the output folder and its lock (outdir.c), the batch size
 * against RAM (batch_fit.c), the progress bar (progress.c), metrics.csv
 * (metrics.c), the shrink (shrink.c), the UNET_TRAIN_TRACE test hook
 * (trace.c), the ranks' settings compared (rank_check.c) and the file
 * format (ckpt/, pth/) live elsewhere.
 */
#include "train.h"

#include "batch_fit.h"
#include "curves.h"
#include "dist.h"
#include "fpenv.h"
#include "memguard.h"
#include "metrics.h"
#include "outdir.h"
#include "progress.h"
#include "rank_check.h"
#include "shrink.h"
#include "trace.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIB (1024.0 * 1024.0)
/* Not an exit status: the stop was answered by a shrink, the run goes on. */
#define UT_GO_ON (-1)

typedef struct trainer {
    const train_opts *o;
    run_cfg c;              /* the run's settings (the batch may be picked) */
    unet_data data;
    unet_split split;
    unet_loader tl, vl;
    bool have_val;
    const unet_backend *be; /* the model's */
    unet *m;
    ckpt_writer *ck;
    guard *g;
    run_state st;
    FILE *csv;
    progress prog;          /* the bar or lines */
    out_dir od;             /* --out, locked */
    ckpt_file *rf;          /* the --resume file until it is applied */
    ckpt_info ri;           /* what it says */
    trace tr;               /* UNET_TRAIN_TRACE */
    dist *d;                /* the data-parallel group (of one without mpirun) */
    int k;                  /* its size */
    bool lead;              /* rank 0: prints, writes --out */
    int mb;                 /* the model's batch: a rank's largest shard */
    int stop_from, stop_kind; /* the agreed stop: its rank and kind */
    char stop_reason[DIST_REASON_MAX];
} trainer;

static void say_err(const char *msg)
{
    fprintf(stderr, "unet-train: %s\n", msg);
}

/* ---- one epoch ------------------------------------------------------------------ */

typedef struct epoch_stats {
    double loss, bce, dice_loss;  /* means over images */
    double dice, iou;             /* validation: hard masks at logit 0 */
    int images;
    double seconds;
} epoch_stats;

/* The next global batch of loader l, this rank's shard of it in the
 * model's staging (*mine images); returns the whole batch's size. */
static int next_shard(trainer *t, unet_loader *l, int *mine)
{
    return unet_loader_next_shard(l, dist_rank(t->d), t->k, unet_input_host(t->m),
                                  unet_target_host(t->m), mine);
}

/* The guard at a batch boundary (guard.h), agreed over the ranks: true
 * when any rank's guard says stop (its rank, kind and reason are kept for
 * the banner). sums[0..n) become the sums over the ranks on the way. */
static bool should_stop(trainer *t, guard_point where, long batch, double *sums, int n)
{
    bool want = guard_check(t->g, where, batch);
    if (t->k == 1) return want;
    int kind = want ? guard_stop_reason(t->g, t->stop_reason, sizeof t->stop_reason) : 0;
    t->stop_from = dist_step(t->d, sums, n, kind, t->stop_reason, &t->stop_kind);
    return t->stop_from >= 0;
}

/* One training step on this rank's shard (mine images) of a global batch
 * of bn: the loss parts times the images into sums[0..3), the gradients
 * summed over the ranks, Adam's step. A shard can be empty (a batch
 * smaller than the ranks: an epoch's short last batch, --batch 1 at 2
 * ranks): it adds no loss and a zero gradient, and the means stay over
 * the global count (the caller divides by the batch's images). With
 * --sync-bn it still runs the model at batch 0, so it takes part in
 * SyncBatchNorm's sums (adding no samples); with per-rank BN it skips the
 * model, whose statistics of no samples would be 0/0. */
static void train_step(trainer *t, int mine, int bn, double sums[3])
{
    unet *m = t->m;
    const run_cfg *c = &t->c;
    sums[0] = sums[1] = sums[2] = 0.0;
    if (mine > 0 || m->bn_sync) {
        unet_forward(m, mine, true);
        double bce, dl;
        double loss = unet_loss(m, mine, &bce, &dl);
        unet_loss_share(m, mine, bn);
        unet_backward(m, mine);
        if (mine > 0) {
            sums[0] = loss * mine;
            sums[1] = bce * mine;
            sums[2] = dl * mine;
        }
    }
    /* Whatever the kernels leave in the gradients at batch 0, an empty
     * shard's share of the sum is zero. */
    if (mine == 0) memset(m->grads, 0, m->plan.params_floats * sizeof(float));
    if (t->k > 1) dist_sum_grads(t->d, m->grads, m->plan.params_floats);
    unet_adam(m, c->lr, c->beta1, c->beta2, c->eps, c->weight_decay);
}

/* Trains the rest of this epoch. Returns true when the guard said stop
 * (after finishing the current batch). The epoch's sums live in t->st, so
 * an emergency checkpoint carries them and a resumed epoch reports the
 * same means. */
static bool train_epoch(trainer *t, int epoch, epoch_stats *es)
{
    run_state *st = &t->st;
    double t0 = progress_now_s() - st->ep_seconds;
    int done = (int)st->batch, total = done + unet_loader_batches_left(&t->tl);
    bool stop = false;
    int bn, mine;
    while ((bn = next_shard(t, &t->tl, &mine)) > 0) {
        trace_batch(&t->tr, &t->tl, bn);
        double sums[3]; /* this rank's; over the ranks below */
        train_step(t, mine, bn, sums);
        stop = should_stop(t, GP_TRAIN, done + 1, sums, 3);
        st->ep_loss += sums[0];
        st->ep_bce += sums[1];
        st->ep_dice += sums[2];
        st->ep_images += bn;
        st->batch = ++done;
        st->ep_seconds = progress_now_s() - t0;
        if (t->lead)
            progress_show(&t->prog, "train", epoch, done, total,
                          st->ep_loss / (double)st->ep_images, (double)st->ep_images, t0);
        if (stop) break;
    }
    if (t->lead) progress_end(&t->prog);
    double n = (double)st->ep_images;
    es->loss = n > 0 ? st->ep_loss / n : NAN;
    es->bce = n > 0 ? st->ep_bce / n : NAN;
    es->dice_loss = n > 0 ? st->ep_dice / n : NAN;
    es->images = (int)st->ep_images;
    es->seconds = st->ep_seconds;
    return stop;
}

/* Hard Dice and IoU of one image's logits (> 0 is foreground); an image
 * with neither predicted nor true foreground scores 1. */
static void hard_scores(const float *logit, const float *target, int hw, double *dice, double *iou)
{
    long inter = 0, p = 0, tr = 0;
    for (int i = 0; i < hw; i++) {
        int a = logit[i] > 0.0f, b = target[i] > 0.5f;
        inter += a & b;
        p += a;
        tr += b;
    }
    *dice = p + tr ? 2.0 * (double)inter / (double)(p + tr) : 1.0;
    *iou = p + tr - inter ? (double)inter / (double)(p + tr - inter) : 1.0;
}

/* One validation batch of `batch` images in the staging: the loss times
 * the images into *sum, the hard Dice and IoU of each into *sd and *si. */
static void eval_batch(unet *m, int batch, double *sum, double *sd, double *si)
{
    int hw = m->h * m->w;
    const float *target = unet_target_host(m);
    unet_forward(m, batch, false);
    double loss = unet_loss(m, batch, NULL, NULL);
    const float *logits = unet_logits_host(m, batch);
    *sum += loss * batch;
    for (int i = 0; i < batch; i++) {
        double d, u;
        hard_scores(logits + (size_t)i * (size_t)hw, target + (size_t)i * (size_t)hw, hw, &d,
                    &u);
        *sd += d;
        *si += u;
    }
}

/* Evaluates the whole validation set (it is deterministic, so a stop
 * inside it simply evaluates again after a resume). Returns true when the
 * guard said stop. */
static bool eval_epoch(trainer *t, int epoch, epoch_stats *es)
{
    unet *m = t->m;
    double t0 = progress_now_s(), sum = 0, sd = 0, si = 0;
    int images = 0, done = 0;
    unet_loader_begin_epoch(&t->vl);
    int total = unet_loader_batches_left(&t->vl), bn, mine;
    bool stop = false;
    /* Evaluated with rank 0's BatchNorm running statistics (per-rank BN:
     * DDP's broadcast_buffers; --sync-bn keeps them equal anyway). */
    if (t->k > 1 && !m->bn_sync)
        dist_bcast(t->d, m->params, m->plan.params_floats * sizeof(float));
    while ((bn = next_shard(t, &t->vl, &mine)) > 0) {
        if (mine > 0) eval_batch(m, mine, &sum, &sd, &si); /* none: a batch smaller than K */
        images += mine;
        done++;
        if (t->lead) progress_show(&t->prog, "val", epoch, done, total, sum / images, images, t0);
        if (should_stop(t, GP_EVAL, done, NULL, 0)) {
            stop = true;
            break;
        }
    }
    if (t->lead) progress_end(&t->prog);
    double all[4] = {sum, sd, si, images}; /* this rank's; now every rank's */
    if (t->k > 1) {
        dist_sum_small(t->d, all, 4);
        sum = all[0], sd = all[1], si = all[2], images = (int)all[3];
    }
    es->loss = images ? sum / images : NAN;
    es->dice = images ? sd / images : NAN;
    es->iou = images ? si / images : NAN;
    es->images = images;
    es->seconds = progress_now_s() - t0;
    return stop;
}

/* ---- checkpoints and metrics ------------------------------------------------------ */

static int save(trainer *t, const char *name, const char *kind)
{
    char path[1200], err[512];
    snprintf(path, sizeof path, "%s/%s", t->o->out, name);
    snprintf(t->st.kind, sizeof t->st.kind, "%s", kind);
    unet_loader_export(&t->tl, t->st.loader);
    double t0 = progress_now_s();
    int rc = ckpt_save(t->ck, path, &t->st, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "unet-train: cannot save %s: %s\n", path, err);
        return rc;
    }
    /* The emergency save is this one's size: its time sets how far ahead
     * of a fast fill the guard must ask (mg_predict_lead_ms). */
    if (t->g) guard_note_save(t->g, (uint64_t)((progress_now_s() - t0) * 1000.0));
    return 0;
}

/* OUT/curves.svg from metrics.csv, the stop marked at stop_epoch (0:
 * none). A plot that cannot be written is said, and training goes on. */
static void draw_curves(const trainer *t, int stop_epoch)
{
    char err[1400];
    if (curves_write(t->o->out, stop_epoch, err, sizeof err) < 0)
        fprintf(stderr, "unet-train: cannot draw the curves (training goes on): %s\n", err);
}

/* The emergency banner; a data-parallel run's names the rank that asked. */
static void print_banner(const trainer *t, long epoch, const char *saved)
{
    if (t->k == 1) {
        guard_print_emergency(t->g, epoch, saved);
        return;
    }
    char origin[320];
    snprintf(origin, sizeof origin, "rank %d @ %s", t->stop_from,
             dist_host_of(t->d, t->stop_from));
    guard_print_emergency_from(t->g, epoch, saved, origin, t->stop_kind, t->stop_reason);
}

/* emergency_epochN.pth (path, 1200 bytes) from the buffers that exist
 * (ckpt_save allocates nothing large: its host mirror, if the backend
 * needs one, was reserved at start-up). 0 or the save's error, said.
 * Data parallel: every rank gets here at the same batch, rank 0 saves,
 * and every rank gets its result. */
static int emergency_save(trainer *t, int epoch, char *path)
{
    char err[512];
    snprintf(path, 1200, "%s/emergency_epoch%d.pth", t->o->out, epoch + 1);
    snprintf(t->st.kind, sizeof t->st.kind, "emergency");
    unet_loader_export(&t->tl, t->st.loader);
    int rc = 0;
    if (t->lead) rc = ckpt_save(t->ck, path, &t->st, err, sizeof err);
    if (rc < 0) fprintf(stderr, "unet-train: cannot save %s: %s\n", path, err);
    if (t->k > 1 && dist_agree_rc(t->d, rc < 0) != 0 && rc == 0) rc = MG_EIO; /* rank 0's */
    return rc;
}

/* After the emergency save (rc its result): tells memguard run (every
 * rank its own, for per-node supervisors), prints the seed's banner (rank
 * 0), and returns the "saved and stopped for memory" status (1 when the
 * save failed). */
static int emergency_stop(trainer *t, int epoch, int rc, const char *path)
{
    int ack = rc == 0 ? guard_acknowledge(t->g, path) : 0;
    if (ack < 0)
        fprintf(stderr, "unet-train: saved %s, but cannot tell memguard run so: %s\n", path,
                mg_strerror(ack));
    if (!t->lead) return rc < 0 ? MG_EXIT_ERROR : MG_EXIT_MEMSTOP;
    print_banner(t, epoch + 1, rc == 0 ? path : NULL);
    draw_curves(t, epoch + 1);
    if (rc < 0) {
        fflush(stdout);
        return MG_EXIT_ERROR;
    }
    printf("resume with: unet-train --resume %s [same options; a smaller --batch is fine]\n",
           path);
    fflush(stdout);
    return MG_EXIT_MEMSTOP;
}

/* The emergency stop: the current batch is finished; give memory back
 * before writing (the activations and their gradients are not needed for
 * a checkpoint: unet_release_activations hands them to the backend, which
 * on the CPU returns their pages at once; the data set is freed), write
 * emergency_epochN.pth and stop. */
static int emergency(trainer *t, int epoch)
{
    char path[1200];
    unet_release_activations(t->m);
    unet_data_free(&t->data);
    return emergency_stop(t, epoch, emergency_save(t, epoch, path), path);
}

/* --on-memory shrink, after the emergency save at `path`: the model at a
 * smaller batch from that file, the loaders and the guard told, memguard
 * run answered. 0, or -1 (said) when the run must stop instead. */
static int shrink(trainer *t, int epoch, const char *path)
{
    char err[2400], reason[400], note[64];
    int from = t->c.batch;
    guard_reason(t->g, reason, sizeof reason);
    int to = shrink_model(&t->m, &t->ck, &t->c, t->be, &t->o->guard, path, err, sizeof err);
    if (to == 0) {
        printf("[memguard] batch %d: cannot go on smaller (%s): stopping\n", from, err);
        return -1;
    }
    unet_loader_set_batch(&t->tl, to);
    if (t->have_val) unet_loader_set_batch(&t->vl, to);
    snprintf(note, sizeof note, "batch %d -> %d", from, to);
    int rc = guard_continue(t->g, path, note);
    if (rc < 0) {
        fprintf(stderr, "unet-train: cannot tell memguard run that the run goes on: %s\n",
                mg_strerror(rc));
        return -1;
    }
    shrink_at at = {epoch + 1, t->st.batch ? t->tl.pos : 0, t->tl.n, from, to, path, reason};
    shrink_report(t->o->out, &at);
    guard_set_batch(t->g, to);
    guard_set_trainer_memory(t->g, t->m->plan.total_bytes, t->m->plan.total_bytes);
    return 0;
}

/* The guard said stop: stop, or with --on-memory shrink (when memguard run,
 * if it asked, takes that answer) save and go on smaller. UT_GO_ON or the
 * exit status. */
static int on_stop(trainer *t, int epoch)
{
    if (!t->o->shrink || !guard_may_continue(t->g)) return emergency(t, epoch);
    char path[1200];
    unet_release_activations(t->m);
    int rc = emergency_save(t, epoch, path);
    if (rc == 0 && shrink(t, epoch, path) == 0) return UT_GO_ON;
    unet_data_free(&t->data);
    return emergency_stop(t, epoch, rc, path);
}

/* ---- set-up -------------------------------------------------------------------------- */

static void trainer_close(trainer *t)
{
    ckpt_close(t->rf);
    t->rf = NULL;
    if (t->csv) fclose(t->csv);
    guard_close(t->g);
    trace_close(&t->tr);
    ckpt_writer_free(t->ck);
    unet_destroy(t->m);
    unet_loader_free(&t->tl);
    if (t->have_val) unet_loader_free(&t->vl);
    unet_split_free(&t->split);
    unet_data_free(&t->data);
}

/* The samples of the data set, counted without decoding anything. */
static int count_samples(const run_cfg *c, int *n, char *err, size_t len)
{
    if (c->synthetic > 0) {
        *n = c->synthetic;
        return 0;
    }
    return unet_data_count_folder(c->data, n, err, len);
}

/* The flags that would make the model the checkpoint's, as a message. */
static void model_mismatch(const trainer *t, char *err, size_t len)
{
    const unet_cfg *f = &t->ri.model, *m = &t->c.model;
    char pass[96] = "";
    size_t u = 0;
    if (f->in_ch != m->in_ch) u += (size_t)snprintf(pass + u, sizeof pass - u, " --in-ch %d", f->in_ch);
    if (f->base != m->base) u += (size_t)snprintf(pass + u, sizeof pass - u, " --base %d", f->base);
    if (f->depth != m->depth) snprintf(pass + u, sizeof pass - u, " --depth %d", f->depth);
    snprintf(err, len, "--resume %s: the checkpoint is in_ch %d, base %d, depth %d: pass%s",
             t->o->resume, f->in_ch, f->base, f->depth, pass);
}

/* --resume: read and check the file before anything else is done. */
static int open_resume(trainer *t, char *err, size_t len)
{
    char msg[2048];
    if (ckpt_open(t->o->resume, &t->rf, &t->ri, msg, sizeof msg) < 0) {
        snprintf(err, len, "--resume %s", msg);
        return MG_EPARSE;
    }
    const unet_cfg *f = &t->ri.model, *m = &t->c.model;
    if (f->in_ch != m->in_ch || f->base != m->base || f->depth != m->depth) {
        model_mismatch(t, err, len);
        return MG_EINVAL;
    }
    if (t->ri.has_run && t->ri.st.epoch > t->c.epochs) {
        snprintf(err, len, "--resume %s: it has %lld epochs done, more than --epochs %d: pass "
                 "--epochs %lld or more", t->o->resume, (long long)t->ri.st.epoch, t->c.epochs,
                 (long long)t->ri.st.epoch);
        return MG_ERANGE;
    }
    return 0;
}

/* What a data-parallel run of K ranks needs before the data is read: a
 * fixed batch (no --batch auto, no --on-memory shrink), and a backend
 * whose gradients the host may sum. */
static int check_dist_start(const trainer *t, char *err, size_t len)
{
    if (t->k > 1 && (t->o->batch_auto || t->o->shrink)) {
        snprintf(err, len, "%s: not with %d MPI ranks (the ranks would each pick their own "
                 "batch); give --batch N%s", t->o->batch_auto ? "--batch auto" : "--on-memory "
                 "shrink", t->k, t->o->shrink ? " and --on-memory stop" : "");
        return MG_EINVAL;
    }
    if (t->k > 1 && !t->be->host_visible) {
        snprintf(err, len, "backend %s: data-parallel training needs a host-visible backend",
                 t->be->name());
        return MG_EINVAL;
    }
    return 0;
}

/* Everything that needs neither memory nor --out: the model's settings,
 * the --resume file, the data set's size and the memory plan. */
static int check_start(trainer *t, char *err, size_t len)
{
    const run_cfg *c = &t->c;
    int n = 0;
    if (unet_check(&c->model, c->batch, c->img_size, c->img_size, err, len) < 0) return MG_EINVAL;
    if (check_dist_start(t, err, len) < 0) return MG_EINVAL;
    if (t->o->resume[0] && open_resume(t, err, len) < 0) return MG_EINVAL;
    guard_opts go = t->o->guard;
    go.batch = t->mb;
    if (guard_check_opts(&go, err, len) < 0) return MG_EINVAL;
    if (count_samples(c, &n, err, len) < 0) return MG_EINVAL;
    return batch_fit_check_plan(c, t->be, t->o->batch_auto ? 1 : t->mb, n,
                                t->o->guard.ram_budget, err, len);
}

/* The data set, its split and loaders, and --batch auto's pick (which
 * measures RAM with the data in it). */
static int load_data(trainer *t, char *err, size_t len)
{
    run_cfg *c = &t->c;
    int rc = c->synthetic > 0
                 ? unet_data_synthetic(&t->data, c->synthetic, c->img_size, c->model.in_ch,
                                       c->seed, err, len)
                 : unet_data_load_folder(&t->data, c->data, c->img_size, c->model.in_ch, err,
                                         len);
    if (rc < 0) return rc == MG_ENOMEM ? MG_EXIT_ERROR : MG_EXIT_USAGE;
    if (unet_split_make(&t->split, t->data.n, c->val_split, c->seed, err, len) < 0)
        return MG_EXIT_USAGE;
    if (t->o->batch_auto && batch_fit_auto(c, t->be, &t->o->guard, err, len) < 0)
        return MG_EXIT_USAGE;
    unsigned flags = UNET_LOADER_SHUFFLE | (c->flip ? UNET_LOADER_FLIP_H | UNET_LOADER_FLIP_V : 0);
    if (unet_loader_init(&t->tl, &t->data, t->split.train, t->split.n_train, c->batch, flags,
                         c->seed, err, len) < 0)
        return MG_EXIT_USAGE;
    if (t->split.n_val > 0) {
        if (unet_loader_init(&t->vl, &t->data, t->split.val, t->split.n_val, c->batch, 0, 0,
                             err, len) < 0)
            return MG_EXIT_USAGE;
        t->have_val = true;
    }
    return 0;
}

/* The checked --resume file into the model and the loader; then it is
 * freed. */
static int apply_resume(trainer *t, char *err, size_t len)
{
    char msg[2048];
    if (ckpt_apply(t->rf, t->m, msg, sizeof msg) < 0) {
        snprintf(err, len, "--resume %s", msg);
        return MG_EXIT_USAGE;
    }
    ckpt_close(t->rf);
    t->rf = NULL;
    if (t->ri.has_run) {
        t->st = t->ri.st;
        if (unet_loader_import(&t->tl, t->st.loader, msg, sizeof msg) < 0) {
            snprintf(err, len, "--resume %s: %s", t->o->resume, msg);
            return MG_EXIT_USAGE;
        }
    }
    return 0;
}

/* A rank of a data-parallel run: the buffers of the sums, SyncBatchNorm's
 * hook (--sync-bn), and its name on the guard's warnings. */
static int join_group(trainer *t, char *err, size_t len)
{
    int maxc = t->c.model.base << t->c.model.depth; /* the bottleneck's channels */
    if (dist_prepare(t->d, t->m->plan.params_floats, 2 * maxc + 1) < 0) {
        snprintf(err, len, "out of memory for the data-parallel buffers");
        return MG_ENOMEM;
    }
    if (t->o->sync_bn) t->m->bn_sync = dist_sum_hook(t->d);
    char label[320];
    snprintf(label, sizeof label, "[rank %d @ %s] ", dist_rank(t->d), dist_host(t->d));
    guard_set_label(t->g, label);
    return 0;
}

static int trainer_open(trainer *t, const train_opts *o, dist *d, char *err, size_t len)
{
    memset(t, 0, sizeof *t);
    t->od.lock_fd = -1;
    t->tr.fd = -1;
    t->o = o;
    t->d = d;
    t->k = dist_size(d);
    t->lead = dist_rank(d) == 0;
    t->mb = (o->run.batch + t->k - 1) / t->k;
    t->be = ut_backend(o->backend);
    t->c = o->run;
    run_cfg *c = &t->c;
    t->st.best_dice = -1;
    t->st.best_epoch = -1;
    t->prog = progress_make(o->progress, t->c.epochs);

    if (check_start(t, err, len) < 0 || trace_open(&t->tr, err, len) < 0) return MG_EXIT_USAGE;
    unet_plan plan = unet_plan_for(&c->model, t->mb, c->img_size, c->img_size, t->be);
    uint64_t ckpt_bytes = plan.params_floats * 3 * sizeof(float) + (1u << 20);
    if (t->lead && outdir_open_run(&t->od, o->out, ckpt_bytes, err, len) < 0)
        return MG_EXIT_USAGE;
    int rc = load_data(t, err, len);
    if (rc) return rc;
    t->mb = (c->batch + t->k - 1) / t->k; /* --batch auto has picked it now */
    guard_opts go = o->guard;
    go.batch = t->mb;
    t->g = guard_open(&go, err, len);
    if (!t->g) return MG_EXIT_USAGE;
    run_cfg mc = *c; /* one rank's model */
    mc.batch = t->mb;
    if (t->lead) batch_fit_note(&mc, t->be, o->guard.ram_budget, guard_config(t->g));
    t->m = unet_create(&c->model, t->mb, c->img_size, c->img_size, c->seed, t->be, err, len);
    if (!t->m) return MG_EXIT_ERROR;
    if (t->k > 1 && join_group(t, err, len) < 0) return MG_EXIT_ERROR;
    guard_set_trainer_memory(t->g, t->m->plan.total_bytes, t->m->plan.total_bytes);
    t->ck = ckpt_writer_new(t->m, c, err, len);
    if (!t->ck) return MG_EXIT_ERROR;
    if (t->rf && (rc = apply_resume(t, err, len)) != 0) return rc;
    return 0;
}

/* Every rank trains with rank 0's settings (rank_check.h); 0 or exit 2. */
static int same_settings(const trainer *t, char *err, size_t len)
{
    return rank_check(t->d, &t->c, t->o->sync_bn, t->data.n, &t->st, t->m, err, len) < 0
               ? MG_EXIT_USAGE
               : 0;
}

/* Rank 0's first writes into --out's files, once every rank's start-up
 * is agreed (metrics.csv is cut back to a --resume file's epoch: a start
 * another rank refuses must not have done that). */
static int trainer_begin(trainer *t, char *err, size_t len)
{
    const train_opts *o = t->o;
    if (!t->lead) return 0;
    t->csv = metrics_open(o->out, t->st.epoch, t->st.metrics_row, err, len);
    if (!t->csv) return MG_EXIT_USAGE;
    if (!o->resume[0]) shrink_forget(o->out);
    if (o->resume[0])
        printf("resumed from %s: epoch %lld, batch %lld%s\n", o->resume, (long long)t->st.epoch,
               (long long)t->st.batch,
               t->ri.has_opt ? "" : " (weights only: no optimiser state in the file)");
    return 0;
}

static void print_header(const trainer *t)
{
    const run_cfg *c = &t->c;
    const unet_plan *p = &t->m->plan;
    printf("unet-train: UNet depth %d, base %d, %d input channel%s, %zu parameters\n",
           c->model.depth, c->model.base, c->model.in_ch, c->model.in_ch > 1 ? "s" : "",
           p->train_floats);
    if (c->synthetic > 0)
        printf("data: synthetic, %d samples", c->synthetic);
    else
        printf("data: %s, %d samples", c->data, t->data.n);
    printf(" at %dx%d: %d train, %d validation\n", c->img_size, c->img_size,
           t->split.n_train, t->split.n_val);
    printf("batch %d, %d epochs, Adam lr %g, %d threads, backend %s\n", c->batch, c->epochs,
           c->lr, omp_get_max_threads(), t->m->be->name());
    if (t->k > 1)
        printf("data parallel: %d ranks (%s), up to %d images each, BatchNorm %s\n", t->k,
               dist_library(), t->mb, t->o->sync_bn ? "synchronised (--sync-bn)" : "per rank");
    printf("memory plan: %.1f MiB (params+grads+Adam %.1f, activations %.1f, gradients %.1f, "
           "scratch %.1f) + data %.1f MiB\n",
           (double)p->total_bytes / MIB, (double)p->param_bytes / MIB, (double)p->act_bytes / MIB,
           (double)p->grad_bytes / MIB, (double)p->scratch_bytes / MIB,
           (double)unet_data_bytes(t->data.n, c->img_size, c->model.in_ch) / MIB);
    printf("output: %s (last.pth, best.pth, metrics.csv, curves.svg)\n", t->o->out);
    fflush(stdout);
}

/* The row of metrics.csv for the epoch just completed (epoch + 1). */
static void format_row(trainer *t, int epoch, const epoch_stats *tr, const epoch_stats *va,
                       double rate)
{
    snprintf(t->st.metrics_row, sizeof t->st.metrics_row,
             "%d,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.2f,%.2f", epoch + 1, tr->loss, tr->bce,
             tr->dice_loss, va->loss, va->dice, va->iou, rate, tr->seconds + va->seconds);
}

/* After an epoch: the run state moves on, the checkpoints are written,
 * and only then the epoch's metrics.csv row (so a row always has its
 * checkpoint; the checkpoint keeps the row for a crash in between). */
static int end_epoch(trainer *t, int epoch, const epoch_stats *tr, const epoch_stats *va)
{
    double rate = tr->seconds > 0 ? tr->images / tr->seconds : 0;
    if (t->lead)
        printf("epoch %d/%d  train loss %.4f  val loss %.4f  dice %.4f  iou %.4f  %.1f img/s  "
               "%.1f s\n", epoch + 1, t->c.epochs, tr->loss, va->loss, va->dice, va->iou, rate,
               tr->seconds + va->seconds);
    fflush(stdout); /* the epoch's result shows now, not after its saves */
    format_row(t, epoch, tr, va, rate);
    t->st.epoch = epoch + 1;
    t->st.batch = 0;
    t->st.ep_loss = t->st.ep_bce = t->st.ep_dice = t->st.ep_seconds = 0;
    t->st.ep_images = 0;
    bool best = t->have_val && va->dice > t->st.best_dice;
    if (best) {
        t->st.best_dice = va->dice;
        t->st.best_epoch = epoch + 1;
    }
    if (!t->lead) return MG_EXIT_OK;
    if (save(t, "last.pth", "last") < 0 || (best && save(t, "best.pth", "best") < 0))
        return MG_EXIT_ERROR;
    if (metrics_append(t->csv, t->st.metrics_row) != 0) {
        fprintf(stderr, "unet-train: cannot write %s/metrics.csv: %s\n", t->o->out,
                strerror(errno));
        return MG_EXIT_ERROR;
    }
    draw_curves(t, 0);
    fflush(stdout);
    return MG_EXIT_OK;
}

/* One epoch's check at its start, its training from where the loader is,
 * and its validation; a stop answered by a shrink goes on from there.
 * MG_EXIT_OK when the epoch is done, else the exit status. */
static int run_epoch(trainer *t, int epoch, epoch_stats *tr, epoch_stats *va)
{
    int rc;
    while (should_stop(t, GP_EPOCH, -1, NULL, 0))
        if ((rc = on_stop(t, epoch)) != UT_GO_ON) return rc;
    /* A resumed run continues its epoch where the checkpoint left it. */
    if (t->st.batch == 0) unet_loader_begin_epoch(&t->tl);
    while (train_epoch(t, epoch, tr) || (t->have_val && eval_epoch(t, epoch, va)))
        if ((rc = on_stop(t, epoch)) != UT_GO_ON) return rc;
    return MG_EXIT_OK;
}

static int run_epochs(trainer *t)
{
    for (int epoch = (int)t->st.epoch; epoch < t->c.epochs; epoch++) {
        epoch_stats tr = {0}, va = {NAN, NAN, NAN, NAN, NAN, 0, 0};
        int rc = run_epoch(t, epoch, &tr, &va); /* the same on every rank */
        if (rc == MG_EXIT_OK) {
            rc = end_epoch(t, epoch, &tr, &va);
            if (t->k > 1) rc = dist_agree_rc(t->d, rc); /* rank 0's saves */
        }
        if (rc != MG_EXIT_OK) return rc;
    }
    if (!t->lead) return MG_EXIT_OK;
    if (t->k > 1)
        printf("data parallel: rank 0 spent %.2f s in MPI collectives (gradient sums %.2f s, "
               "per-batch sums and stop agreement %.4f s)\n",
               dist_comm_seconds(t->d, DIST_COMM_ALL), dist_comm_seconds(t->d, DIST_COMM_GRADS),
               dist_comm_seconds(t->d, DIST_COMM_STEP));
    printf("done: %s/last.pth", t->o->out);
    if (t->st.best_epoch > 0)
        printf(", %s/best.pth (epoch %lld, dice %.4f)", t->o->out, (long long)t->st.best_epoch,
               t->st.best_dice);
    printf("\n");
    return MG_EXIT_OK;
}

/* --threads, else OMP_NUM_THREADS, else the cores shared out among the
 * ranks on this node (two ranks of two threads each on two cores would
 * take turns). */
static void set_threads(const train_opts *o, const dist *d)
{
    if (o->threads > 0) omp_set_num_threads(o->threads);
    else if (!getenv("OMP_NUM_THREADS") && dist_local_size(d) > 1) {
        int n = omp_get_num_procs() / dist_local_size(d);
        omp_set_num_threads(n > 0 ? n : 1);
    }
}

/* A start's outcome over the ranks (a collective: every rank calls it, rc
 * its own): the largest status, and err of the lowest rank that failed,
 * said by that rank alone, so a bad flag or --resume file shows once, not
 * K times, and a rank whose own flags (mpirun's colon syntax) are bad is
 * still heard. One rank's failed start ends them all. */
static int agree_start(dist *d, int rc, const char *err)
{
    if (dist_first(d, rc != 0) == dist_rank(d)) say_err(err);
    return dist_agree_rc(d, rc);
}

int train_refuse(int rc, const char *msg)
{
    char err[512];
    dist *d = dist_open(err, sizeof err);
    if (!d) {
        say_err(msg);
        return rc;
    }
    rc = agree_start(d, rc, msg);
    dist_close(d);
    return rc;
}

int train_run(const train_opts *o)
{
    /* The checkpoint signal's flag-only handler goes in first: a request
     * from memguard run during start-up (the data set can take a while to
     * load) must not kill us through the signal's default action. The
     * guard's own mg_stop, opened later, still sees it. */
    mg_stop *early = mg_stop_open(0, NULL);
    char err[4096];
    dist *d = dist_open(err, sizeof err);
    if (!d) {
        say_err(err);
        mg_stop_close(early);
        return MG_EXIT_USAGE;
    }
    set_threads(o, d);
    fpenv_flush_denormals();
    trainer t;
    int rc = agree_start(d, trainer_open(&t, o, d, err, sizeof err), err);
    if (rc == 0) rc = agree_start(d, same_settings(&t, err, sizeof err), err);
    if (rc == 0) rc = agree_start(d, trainer_begin(&t, err, sizeof err), err);
    if (rc != 0) {
        trainer_close(&t);
        outdir_close(&t.od, true); /* a failed start leaves no lock and no empty --out */
        dist_close(d);
        mg_stop_close(early);
        return rc;
    }
    if (t.lead) {
        print_header(&t);
        guard_print_start(t.g);
    }
    rc = run_epochs(&t);
    trainer_close(&t);
    outdir_close(&t.od, false);
    dist_close(d);
    mg_stop_close(early);
    return rc;
}

/* ---- plan --------------------------------------------------------------------------- */

int plan_run(const unet_cfg *cfg, int batch, int img_size)
{
    char err[256];
    if (unet_check(cfg, batch, img_size, img_size, err, sizeof err) < 0) {
        say_err(err);
        return MG_EXIT_USAGE;
    }
    unet_plan p = unet_plan_for(cfg, batch, img_size, img_size, unet_backend_cpu());
    printf("UNet depth %d, base %d, %d input channel%s: %zu parameters\n", cfg->depth, cfg->base,
           cfg->in_ch, cfg->in_ch > 1 ? "s" : "", p.train_floats);
    printf("batch %d at %dx%d:\n", batch, img_size, img_size);
    printf("  parameters, gradients, Adam m and v  %10.1f MiB\n", (double)p.param_bytes / MIB);
    printf("  activations kept for backward        %10.1f MiB\n", (double)p.act_bytes / MIB);
    printf("  activation gradients                 %10.1f MiB\n", (double)p.grad_bytes / MIB);
    printf("  kernel scratch                       %10.1f MiB\n", (double)p.scratch_bytes / MIB);
    printf("  batch in / out                       %10.1f MiB\n", (double)p.io_bytes / MIB);
    printf("  total (one arena)                    %10.1f MiB  (%zu bytes)\n",
           (double)p.total_bytes / MIB, p.total_bytes);
    return MG_EXIT_OK;
}
