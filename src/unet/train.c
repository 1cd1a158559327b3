/* SPDX-License-Identifier: MIT */
/*
 * train.c: the training loop of unet-train: data set and split, epochs of
 * training batches and a validation pass (loss, Dice, IoU), a progress
 * bar (plain lines when stdout is not a terminal), metrics.csv, and the
 * last.pth / best.pth checkpoints, written atomically. The memory guard
 * (guard.c) is asked at every batch boundary of both loops; when it says
 * stop, the loop writes emergency_epochN.pth from the buffers it already
 * has and exits with 75.
 *
 * It owns the order of things, not their substance: the model (model.c),
 * the data (data.c) and the file format (ckpt.c, pth_*.c) live elsewhere.
 */
#include "train.h"

#include "fpenv.h"
#include "memguard.h"

#include <sys/mman.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024.0 * 1024.0)

typedef struct trainer {
    const train_opts *o;
    run_cfg c;              /* the run's settings (the batch may be picked) */
    unet_data data;
    unet_split split;
    unet_loader tl, vl;
    bool have_val;
    unet *m;
    ckpt_writer *ck;
    guard *g;
    run_state st;
    FILE *csv;
    bool bar;               /* a redrawn progress bar, else plain lines */
    int out_made;           /* folders of --out this run created */
} trainer;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void say_err(const char *msg)
{
    fprintf(stderr, "unet-train: %s\n", msg);
}

/* ---- the output folder -------------------------------------------------------- */

/* Creates path and its missing parents; *made (may be NULL) gets how many
 * trailing components it created, so a failed start can take them away
 * again (unmake) instead of leaving an empty folder behind. */
static int mkdir_p(const char *path, int *made, char *err, size_t len)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    int n = 0;
    for (char *p = tmp + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(tmp, 0755) == 0) {
                n++;
            } else if (errno != EEXIST) {
                snprintf(err, len, "--out %s: cannot create %s: %s", path, tmp, strerror(errno));
                return -1;
            }
            *p = c;
            if (c == '\0') break;
        }
    }
    if (made) *made = n;
    return 0;
}

/* Removes the last `made` components of path, deepest first, each only if
 * it is still empty (rmdir refuses otherwise: nothing of the user's goes). */
static void unmake(const char *path, int made)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (int i = 0; i < made; i++) {
        size_t l = strlen(tmp);
        while (l > 1 && tmp[l - 1] == '/') tmp[--l] = '\0'; /* "runs/a/" */
        if (rmdir(tmp) != 0) return;
        char *slash = strrchr(tmp, '/');
        if (!slash || slash == tmp) return;
        *slash = '\0';
    }
}

/* Fails now, with a clear message, what would otherwise fail at the
 * emergency: a folder we cannot write into, or without room for two
 * checkpoints (the new one is written next to the old one). Also removes
 * temporaries a killed save left behind ("<name>.pth.tmp.<pid>"). */
static int prepare_out(const char *out, uint64_t ckpt_bytes, int *made, char *err, size_t len)
{
    if (mkdir_p(out, made, err, len) < 0) return -1;
    char probe[1200];
    snprintf(probe, sizeof probe, "%s/.unet-train-write-test.%ld", out, (long)getpid());
    FILE *f = fopen(probe, "w");
    if (!f || fputs("ok\n", f) < 0 || fclose(f) != 0) {
        snprintf(err, len, "--out %s: not writable: %s", out, strerror(errno));
        if (f) unlink(probe);
        return -1;
    }
    unlink(probe);
    struct statvfs vfs;
    if (statvfs(out, &vfs) == 0) {
        uint64_t avail = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
        if (avail < 2 * ckpt_bytes + (16u << 20)) {
            snprintf(err, len, "--out %s: %.1f MiB free, a checkpoint needs %.1f MiB (room for two "
                     "plus 16 MiB is required)", out, (double)avail / MIB, (double)ckpt_bytes / MIB);
            return -1;
        }
    }
    DIR *d = opendir(out);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strstr(e->d_name, ".pth.tmp.")) continue;
        char p[1400];
        snprintf(p, sizeof p, "%s/%s", out, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    return 0;
}

/* ---- progress ----------------------------------------------------------------- */

static void progress(trainer *t, const char *phase, int epoch, int done, int total, double loss,
                     double imgs, double t0)
{
    double el = now_s() - t0;
    double rate = el > 0 ? imgs / el : 0;
    double eta = done > 0 ? el / done * (total - done) : 0;
    if (t->bar) {
        int width = 24, fill = total ? done * width / total : width;
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        printf("\r  %-5s epoch %d/%d [%s] %d/%d loss %.4f %6.1f img/s ETA %d:%02d ", phase,
               epoch + 1, t->c.epochs, bar, done, total, loss, rate, (int)eta / 60,
               (int)eta % 60);
        fflush(stdout);
    } else if (done == total || done % 10 == 0) {
        /* A log file gets a line every 10 batches, not a redrawn bar. */
        printf("  %s epoch %d/%d batch %d/%d loss %.4f %.1f img/s ETA %ds\n", phase, epoch + 1,
               t->c.epochs, done, total, loss, rate, (int)eta);
        fflush(stdout); /* `tail -f` of a log shows it now, not at the epoch's end */
    }
}

static void progress_end(trainer *t)
{
    if (t->bar) printf("\r%100s\r", "");
}

/* ---- one epoch ------------------------------------------------------------------ */

typedef struct epoch_stats {
    double loss, bce, dice_loss;  /* means over images */
    double dice, iou;             /* validation: hard masks at logit 0 */
    int images;
    double seconds;
} epoch_stats;

/* Trains the rest of this epoch. Returns true when the guard said stop
 * (after finishing the current batch). The epoch's sums live in t->st, so
 * an emergency checkpoint carries them and a resumed epoch reports the
 * same means. */
static bool train_epoch(trainer *t, int epoch, epoch_stats *es)
{
    unet *m = t->m;
    const run_cfg *c = &t->c;
    run_state *st = &t->st;
    double t0 = now_s() - st->ep_seconds;
    int done = (int)st->batch, total = done + unet_loader_batches_left(&t->tl);
    bool stop = false;
    int bn;
    while ((bn = unet_loader_next(&t->tl, m->in_nchw, m->target_nchw)) > 0) {
        unet_forward(m, bn, true);
        double bce, dl;
        double loss = unet_loss(m, bn, &bce, &dl);
        unet_backward(m, bn);
        unet_adam(m, c->lr, c->beta1, c->beta2, c->eps, c->weight_decay);
        st->ep_loss += loss * bn;
        st->ep_bce += bce * bn;
        st->ep_dice += dl * bn;
        st->ep_images += bn;
        st->batch = ++done;
        st->ep_seconds = now_s() - t0;
        progress(t, "train", epoch, done, total, st->ep_loss / (double)st->ep_images,
                 (double)st->ep_images, t0);
        if (guard_check(t->g, GP_TRAIN, done)) {
            stop = true;
            break;
        }
    }
    progress_end(t);
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

/* Evaluates the whole validation set (it is deterministic, so a stop
 * inside it simply evaluates again after a resume). Returns true when the
 * guard said stop. */
static bool eval_epoch(trainer *t, int epoch, epoch_stats *es)
{
    unet *m = t->m;
    double t0 = now_s(), sum = 0, sd = 0, si = 0;
    int images = 0, done = 0;
    unet_loader_begin_epoch(&t->vl);
    int total = unet_loader_batches_left(&t->vl), bn;
    int hw = m->h * m->w;
    bool stop = false;
    while ((bn = unet_loader_next(&t->vl, m->in_nchw, m->target_nchw)) > 0) {
        unet_forward(m, bn, false);
        double loss = unet_loss(m, bn, NULL, NULL);
        sum += loss * bn;
        for (int i = 0; i < bn; i++) {
            double d, u;
            hard_scores(m->logits_nchw + (size_t)i * (size_t)hw,
                        m->target_nchw + (size_t)i * (size_t)hw, hw, &d, &u);
            sd += d;
            si += u;
        }
        images += bn;
        done++;
        progress(t, "val", epoch, done, total, sum / images, images, t0);
        if (guard_check(t->g, GP_EVAL, done)) {
            stop = true;
            break;
        }
    }
    progress_end(t);
    es->loss = images ? sum / images : NAN;
    es->dice = images ? sd / images : NAN;
    es->iou = images ? si / images : NAN;
    es->images = images;
    es->seconds = now_s() - t0;
    return stop;
}

/* ---- checkpoints and metrics ------------------------------------------------------ */

static int save(trainer *t, const char *name, const char *kind)
{
    char path[1200], err[512];
    snprintf(path, sizeof path, "%s/%s", t->o->out, name);
    snprintf(t->st.kind, sizeof t->st.kind, "%s", kind);
    unet_loader_export(&t->tl, t->st.loader);
    int rc = ckpt_save(t->ck, path, &t->st, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "unet-train: cannot save %s: %s\n", path, err);
        return rc;
    }
    return 0;
}

/* The emergency stop: the current batch is finished; give memory back
 * before writing (the activations and their gradients are not needed for
 * a checkpoint: MADV_DONTNEED returns their pages at once; the data set
 * is freed), write emergency_epochN.pth from the buffers that exist
 * (ckpt_save allocates nothing large), print the seed's banner, and return
 * the "saved and stopped for memory" status. */
static int emergency(trainer *t, int epoch)
{
    char name[64], path[1200], err[512];
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)t->m->zero_lo + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    uintptr_t hi = (uintptr_t)t->m->zero_hi & ~((uintptr_t)page - 1);
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
    t->m->cur_batch = -1; /* the zeroed pages must be set up again if used */
    unet_data_free(&t->data);

    snprintf(name, sizeof name, "emergency_epoch%d.pth", epoch + 1);
    snprintf(path, sizeof path, "%s/%s", t->o->out, name);
    snprintf(t->st.kind, sizeof t->st.kind, "emergency");
    unet_loader_export(&t->tl, t->st.loader);
    int rc = ckpt_save(t->ck, path, &t->st, err, sizeof err);
    if (rc < 0) fprintf(stderr, "unet-train: cannot save %s: %s\n", path, err);
    int ack = rc == 0 ? guard_acknowledge(t->g, path) : 0;
    if (ack < 0)
        fprintf(stderr, "unet-train: saved %s, but cannot tell memguard run so: %s\n", path,
                mg_strerror(ack));
    guard_print_emergency(t->g, epoch + 1, rc == 0 ? path : NULL);
    if (rc < 0) {
        fflush(stdout);
        return UT_EXIT_ERROR;
    }
    printf("resume with: unet-train --resume %s [same options; a smaller --batch is fine]\n",
           path);
    fflush(stdout);
    return UT_EXIT_MEMSTOP;
}

static FILE *open_csv(const char *out)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/metrics.csv", out);
    struct stat sb;
    bool fresh = stat(path, &sb) != 0 || sb.st_size == 0;
    FILE *f = fopen(path, "a");
    if (f && fresh)
        fprintf(f, "epoch,train_loss,train_bce,train_dice_loss,val_loss,val_dice,val_iou,"
                   "train_images_per_s,epoch_seconds\n");
    return f;
}

/* ---- set-up -------------------------------------------------------------------------- */

static void trainer_close(trainer *t)
{
    if (t->csv) fclose(t->csv);
    guard_close(t->g);
    ckpt_writer_free(t->ck);
    unet_destroy(t->m);
    unet_loader_free(&t->tl);
    if (t->have_val) unet_loader_free(&t->vl);
    unet_split_free(&t->split);
    unet_data_free(&t->data);
}

/* --batch auto: the largest batch whose planned peak (the arena plan on
 * top of what is in use now, the loaded data set included) stays below the
 * RAM warn threshold, with the seed's table row for that batch when no
 * thresholds were given. The plan is exact and linear in the batch, so
 * this needs no trial allocation. */
/* RAM in use now and the limit that applies (machine, cgroup or budget). */
static bool ram_now(const trainer *t, mg_snapshot *s)
{
    mg_config mc = {0};
    mc.ram_budget_bytes = t->o->guard.ram_budget;
    mc.no_gpu = true;
    int e;
    mg_ctx *ctx = mg_create(&mc, &e);
    bool ok = ctx && mg_sample(ctx, s) == 0 && s->ram.known;
    mg_destroy(ctx);
    return ok;
}

/* The fullest any RAM limit would be with `plan` more bytes in use. Every
 * limit must hold the plan (the machine, a cgroup, the budget), not only
 * the one fullest now: before the model exists the machine is often fuller
 * in fraction than a budget that the model alone will overflow. */
static double plan_frac(const mg_snapshot *s, uint64_t plan, const struct mg_ram_limit **which)
{
    double frac = 0;
    for (unsigned l = 0; l < s->ram.nlimits && l < 3; l++) {
        const struct mg_ram_limit *lim = &s->ram.limits[l];
        double f = (double)(lim->used_bytes + plan) / (double)lim->total_bytes;
        if (f >= frac) {
            frac = f;
            if (which) *which = lim;
        }
    }
    return frac;
}

static int pick_batch(trainer *t, char *err, size_t len)
{
    run_cfg *c = &t->c;
    mg_snapshot s;
    if (!ram_now(t, &s)) {
        snprintf(err, len, "--batch auto: RAM cannot be measured here; give --batch N");
        return -1;
    }
    int best = 0;
    double best_frac = 0, best_warn = 0;
    uint64_t best_plan = 0;
    const struct mg_ram_limit *best_lim = NULL;
    for (int b = 1; b <= 4096; b++) {
        double warn = t->o->guard.warn_ram > 0 ? t->o->guard.warn_ram : guard_table_warn_ram(b);
        unet_plan p = unet_plan_for(&c->model, b, c->img_size, c->img_size);
        const struct mg_ram_limit *lim = NULL;
        double frac = plan_frac(&s, p.total_bytes, &lim);
        if (frac >= warn) break; /* the plan grows with b; the table only gets stricter */
        best = b;
        best_frac = frac;
        best_warn = warn;
        best_plan = p.total_bytes;
        best_lim = lim;
    }
    if (best == 0) {
        unet_plan p = unet_plan_for(&c->model, 1, c->img_size, c->img_size);
        snprintf(err, len, "--batch auto: even batch 1 needs %.1f MiB, but only %.1f MiB are left "
                 "below the RAM warn threshold (%.1f MiB of %.1f MiB in use, limit: %s)",
                 (double)p.total_bytes / MIB,
                 fmax(0.0, guard_table_warn_ram(1) * (double)s.ram.total_bytes -
                               (double)s.ram.used_bytes) / MIB,
                 (double)s.ram.used_bytes / MIB, (double)s.ram.total_bytes / MIB,
                 mg_ram_source_name(s.ram.source));
        return -1;
    }
    printf("batch auto: %d (RAM in use %.1f MiB of %.1f MiB, limit %s; batch %d plans %.1f MiB, "
           "reaching %.1f%% < warn %.0f%%)\n", best, (double)best_lim->used_bytes / MIB,
           (double)best_lim->total_bytes / MIB, mg_ram_source_name(best_lim->source), best,
           (double)best_plan / MIB, 100.0 * best_frac, 100.0 * best_warn);
    c->batch = best;
    return 0;
}

/* Says before anything is allocated when the planned memory will not fit
 * below the thresholds in force, so the user learns it in a second rather
 * than at the first check. Training still starts: the monitor stops it
 * safely if the plan was right. */
static void check_fit(const trainer *t)
{
    mg_snapshot s;
    if (!ram_now(t, &s)) return;
    const mg_config *cfg = guard_config(t->g);
    unet_plan p = unet_plan_for(&t->c.model, t->c.batch, t->c.img_size, t->c.img_size);
    const struct mg_ram_limit *lim = NULL;
    double frac = plan_frac(&s, p.total_bytes, &lim);
    if (frac < cfg->warn_ram_frac || !lim) return;
    printf("note: batch %d plans %.1f MiB; with %.1f MiB in use that is %.0f%% of %.1f MiB (%s), "
           "at or above the %s threshold (%.0f%%): the monitor will %s. A smaller --batch, or "
           "--batch auto, fits.\n", t->c.batch, (double)p.total_bytes / MIB,
           (double)lim->used_bytes / MIB, 100.0 * frac, (double)lim->total_bytes / MIB,
           mg_ram_source_name(lim->source), frac >= cfg->stop_ram_frac ? "stop" : "warn",
           100.0 * (frac >= cfg->stop_ram_frac ? cfg->stop_ram_frac : cfg->warn_ram_frac),
           frac >= cfg->stop_ram_frac ? "stop the run and save it" : "warn");
}

static int trainer_open(trainer *t, const train_opts *o)
{
    char err[4096];
    memset(t, 0, sizeof *t);
    t->o = o;
    t->c = o->run;
    run_cfg *c = &t->c;
    t->st.best_dice = -1;
    t->st.best_epoch = -1;
    t->bar = o->progress == 1 || (o->progress < 0 && isatty(STDOUT_FILENO));

    if (unet_check(&c->model, c->batch, c->img_size, c->img_size, err, sizeof err) < 0) {
        say_err(err);
        return UT_EXIT_USAGE;
    }
    unet_plan plan = unet_plan_for(&c->model, c->batch, c->img_size, c->img_size);
    uint64_t ckpt_bytes = plan.params_floats * 3 * sizeof(float) + (1u << 20);
    if (prepare_out(o->out, ckpt_bytes, &t->out_made, err, sizeof err) < 0) {
        say_err(err);
        return UT_EXIT_USAGE;
    }
    int rc = c->synthetic > 0
                 ? unet_data_synthetic(&t->data, c->synthetic, c->img_size, c->model.in_ch,
                                       c->seed, err, sizeof err)
                 : unet_data_load_folder(&t->data, c->data, c->img_size, c->model.in_ch, err,
                                         sizeof err);
    if (rc < 0) {
        say_err(err);
        return rc == MG_ENOMEM ? UT_EXIT_ERROR : UT_EXIT_USAGE;
    }
    if (unet_split_make(&t->split, t->data.n, c->val_split, c->seed, err, sizeof err) < 0) {
        say_err(err);
        return UT_EXIT_USAGE;
    }
    if (o->batch_auto && pick_batch(t, err, sizeof err) < 0) {
        say_err(err);
        return UT_EXIT_USAGE;
    }
    guard_opts go = o->guard;
    go.batch = c->batch;
    t->g = guard_open(&go, err, sizeof err);
    if (!t->g) {
        say_err(err);
        return UT_EXIT_USAGE;
    }
    check_fit(t);
    unsigned flags = UNET_LOADER_SHUFFLE | (c->flip ? UNET_LOADER_FLIP_H | UNET_LOADER_FLIP_V : 0);
    if (unet_loader_init(&t->tl, &t->data, t->split.train, t->split.n_train, c->batch, flags,
                         c->seed, err, sizeof err) < 0) {
        say_err(err);
        return UT_EXIT_USAGE;
    }
    if (t->split.n_val > 0) {
        if (unet_loader_init(&t->vl, &t->data, t->split.val, t->split.n_val, c->batch, 0, 0,
                             err, sizeof err) < 0) {
            say_err(err);
            return UT_EXIT_USAGE;
        }
        t->have_val = true;
    }
    t->m = unet_create(&c->model, c->batch, c->img_size, c->img_size, c->seed, err, sizeof err);
    if (!t->m) {
        say_err(err);
        return UT_EXIT_ERROR;
    }
    guard_set_trainer_memory(t->g, t->m->plan.total_bytes, t->m->plan.total_bytes);
    t->ck = ckpt_writer_new(t->m, c, err, sizeof err);
    if (!t->ck) {
        say_err(err);
        return UT_EXIT_ERROR;
    }
    if (o->resume) {
        run_cfg saved = *c;
        int have_opt, have_run;
        rc = ckpt_load(o->resume, t->m, &saved, &t->st, &have_opt, &have_run, err, sizeof err);
        if (rc < 0) {
            fprintf(stderr, "unet-train: --resume %s\n", err);
            return UT_EXIT_USAGE;
        }
        if (have_run && unet_loader_import(&t->tl, t->st.loader, err, sizeof err) < 0) {
            fprintf(stderr, "unet-train: --resume %s: %s\n", o->resume, err);
            return UT_EXIT_USAGE;
        }
        if (!have_run) t->st.epoch = t->st.batch = 0;
        printf("resumed from %s: epoch %lld, batch %lld%s\n", o->resume,
               (long long)t->st.epoch, (long long)t->st.batch,
               have_opt ? "" : " (weights only: no optimiser state in the file)");
    }
    t->csv = open_csv(o->out);
    if (!t->csv) {
        fprintf(stderr, "unet-train: cannot open %s/metrics.csv: %s\n", o->out, strerror(errno));
        return UT_EXIT_USAGE;
    }
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
    printf("memory plan: %.1f MiB (params+grads+Adam %.1f, activations %.1f, gradients %.1f, "
           "scratch %.1f) + data %.1f MiB\n",
           (double)p->total_bytes / MIB, (double)p->param_bytes / MIB, (double)p->act_bytes / MIB,
           (double)p->grad_bytes / MIB, (double)p->scratch_bytes / MIB,
           (double)unet_data_bytes(t->data.n, c->img_size, c->model.in_ch) / MIB);
    printf("output: %s (last.pth, best.pth, metrics.csv)\n", t->o->out);
    fflush(stdout);
}

int train_run(const train_opts *o)
{
    /* The checkpoint signal's flag-only handler goes in first: a request
     * from memguard run during start-up (the data set can take a while to
     * load) must not kill us through the signal's default action. The
     * guard's own mg_stop, opened later, still sees it. */
    mg_stop *early = mg_stop_open(0, NULL);
    if (o->threads > 0) omp_set_num_threads(o->threads);
    fpenv_flush_denormals();
    trainer t;
    int rc = trainer_open(&t, o);
    if (rc != 0) {
        trainer_close(&t);
        unmake(o->out, t.out_made); /* a failed start leaves no empty --out */
        mg_stop_close(early);
        return rc;
    }
    print_header(&t);
    guard_print_start(t.g);
    const run_cfg *c = &t.c;
    rc = UT_EXIT_OK;
    for (int epoch = (int)t.st.epoch; epoch < c->epochs; epoch++) {
        if (guard_check(t.g, GP_EPOCH, -1)) {
            rc = emergency(&t, epoch);
            break;
        }
        /* A resumed run continues its epoch where the checkpoint left it. */
        if (t.st.batch == 0) unet_loader_begin_epoch(&t.tl);
        epoch_stats tr = {0}, va = {NAN, NAN, NAN, NAN, NAN, 0, 0};
        if (train_epoch(&t, epoch, &tr) || (t.have_val && eval_epoch(&t, epoch, &va))) {
            rc = emergency(&t, epoch);
            break;
        }
        double rate = tr.seconds > 0 ? tr.images / tr.seconds : 0;
        printf("epoch %d/%d  train loss %.4f  val loss %.4f  dice %.4f  iou %.4f  %.1f img/s  "
               "%.1f s\n", epoch + 1, c->epochs, tr.loss, va.loss, va.dice, va.iou, rate,
               tr.seconds + va.seconds);
        fprintf(t.csv, "%d,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.2f,%.2f\n", epoch + 1, tr.loss, tr.bce,
                tr.dice_loss, va.loss, va.dice, va.iou, rate, tr.seconds + va.seconds);
        fflush(t.csv);
        t.st.epoch = epoch + 1;
        t.st.batch = 0;
        t.st.ep_loss = t.st.ep_bce = t.st.ep_dice = t.st.ep_seconds = 0;
        t.st.ep_images = 0;
        bool best = t.have_val && va.dice > t.st.best_dice;
        if (best) {
            t.st.best_dice = va.dice;
            t.st.best_epoch = epoch + 1;
        }
        if (save(&t, "last.pth", "last") < 0 || (best && save(&t, "best.pth", "best") < 0)) {
            rc = UT_EXIT_ERROR;
            break;
        }
        fflush(stdout);
    }
    if (rc == UT_EXIT_OK) {
        printf("done: %s/last.pth", o->out);
        if (t.st.best_epoch > 0)
            printf(", %s/best.pth (epoch %lld, dice %.4f)", o->out, (long long)t.st.best_epoch,
                   t.st.best_dice);
        printf("\n");
    }
    trainer_close(&t);
    mg_stop_close(early);
    return rc;
}

/* ---- plan --------------------------------------------------------------------------- */

int plan_run(const unet_cfg *cfg, int batch, int img_size)
{
    char err[256];
    if (unet_check(cfg, batch, img_size, img_size, err, sizeof err) < 0) {
        say_err(err);
        return UT_EXIT_USAGE;
    }
    unet_plan p = unet_plan_for(cfg, batch, img_size, img_size);
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
    return UT_EXIT_OK;
}
