/* SPDX-License-Identifier: MIT */
/*
 * test_ops_bn_sync.c: SyncBatchNorm (bn_relu_forward_sync,
 * bn_relu_backward_sync) against BatchNorm over the whole batch, without
 * MPI: a batch is cut into parts (3 + 2 images, and 2 + 2 + 1), each part
 * runs the ops on its own images in turn, and the hook answers each call
 * with the sum of every part's vector at that call. Since what a part
 * sends at call k depends only on the answers to calls before k, the parts
 * are run again and again, one more call answered each round, until all
 * are (the hook records what it gets and answers the sums known so far).
 * Then, for the optimised and the reference kernels (UNET_KERNELS=ref):
 * every part has the whole batch's mean, rstd and running statistics
 * (bit for bit the same in every part), its y and dx are the whole batch's
 * rows of y and dx, and the parts' dgamma and dbeta add up to the whole
 * batch's, to float rounding (the sums are taken in another order). A NULL
 * hook is bn_relu_forward bit for bit (test_ops_bn's references hold).
 */
#include <stdint.h>
#include <string.h>

#include "bn.h"
#include "layout.h"
#include "mg_ops_test.h"
#include "model.h" /* BN_EPS, BN_MOMENTUM */

#define MAX_PARTS 3
#define MAX_CALLS 256
#define MAX_N 64 /* doubles per call: 2 C + 1 */
#define C_ 13    /* channels: one block and a padded one */

/* The rounds' memory: what each part sent at each call, and the sums. */
typedef struct replay {
    int part;                                  /* the part running now */
    int call;                                  /* its next call */
    int known;                                 /* calls whose sums are known */
    int calls;                                 /* calls per run (the last round's) */
    int n[MAX_CALLS];
    double sent[MAX_PARTS][MAX_CALLS][MAX_N];
    double sum[MAX_CALLS][MAX_N];
} replay;

static void replay_sum(void *ctx, double *v, int n)
{
    replay *r = ctx;
    int k = r->call++;
    if (k >= MAX_CALLS || n > MAX_N) {
        MG_FAIL_("hook: call %d of %d doubles is past the test's room", k, n);
        return;
    }
    r->n[k] = n;
    memcpy(r->sent[r->part][k], v, (size_t)n * sizeof *v);
    if (k < r->known) memcpy(v, r->sum[k], (size_t)n * sizeof *v);
}

/* One part's tensors and results. */
typedef struct part {
    shape s;
    int first;                 /* its first image in the batch */
    float *x, *dy, *y, *dx;    /* blocked */
    float mean[C_], rstd[C_], rm[C_], rv[C_], dg[C_], db[C_];
    int64_t nbt;
    float *scratch;
} part;

/* The whole batch's x and dy in NCHW, the parameters, the running
 * statistics before the step. */
typedef struct batch {
    shape s;
    float *x, *dy;
    float gamma[C_], beta[C_], rm[C_], rv[C_];
} batch;

static batch batch_make(int b)
{
    batch k;
    k.s = (shape){C_, b, 6, 7};
    k.x = fill_nchw(k.s, 2.0f, 0.7f);
    k.dy = fill_nchw(k.s, 1.0f, 0.0f);
    for (int c = 0; c < C_; c++) {
        k.gamma[c] = 1.0f + 0.5f * urand();
        k.beta[c] = 0.3f * urand();
        k.rm[c] = 0.1f * urand();
        k.rv[c] = 1.0f + 0.2f * urand();
    }
    return k;
}

/* Images [first, first + count) of an NCHW tensor of shape s, blocked. */
static float *slice(shape s, const float *nchw, int first, int count)
{
    shape p = {s.c, count, s.h, s.w};
    size_t img = (size_t)s.c * (size_t)s.h * (size_t)s.w;
    return blocked(p, nchw + (size_t)first * img);
}

/* Forward and backward of one part (or of the whole batch: one part,
 * hook NULL), from the batch's running statistics. */
static void run_part(const batch *k, part *p, const unet_sum_hook *hook)
{
    memcpy(p->rm, k->rm, sizeof p->rm);
    memcpy(p->rv, k->rv, sizeof p->rv);
    p->nbt = 0;
    bn_relu_forward_sync(p->y, p->x, p->s, k->gamma, k->beta, p->mean, p->rstd, p->rm, p->rv,
                         &p->nbt, BN_MOMENTUM, BN_EPS, p->scratch, hook);
    bn_relu_backward_sync(p->dx, p->dg, p->db, p->dy, p->x, p->s, k->gamma, k->beta, p->mean,
                          p->rstd, p->scratch, hook);
}

static void part_make(const batch *k, part *p, int first, int count)
{
    p->s = (shape){C_, count, k->s.h, k->s.w};
    p->first = first;
    p->x = slice(k->s, k->x, first, count);
    p->dy = slice(k->s, k->dy, first, count);
    p->y = sentinel(p->s);
    p->dx = sentinel(p->s);
    p->scratch = malloc(bn_scratch_floats(p->s) * sizeof(float));
}

static void part_free(part *p)
{
    free(p->x);
    free(p->dy);
    free(p->y);
    free(p->dx);
    free(p->scratch);
}

/* max |a - b| / max |b| of a part's rows of t against the whole batch's. */
static double rows_err(const part *p, const float *t, const part *whole, const float *w)
{
    double e = 0, m = 1e-30;
    for (int c = 0; c < C_; c++)
        for (int b = 0; b < p->s.b; b++)
            for (int y = 0; y < p->s.h; y++)
                for (int x = 0; x < p->s.w; x++) {
                    double a = t[shape_at(p->s, c, b, y, x)];
                    double r = w[shape_at(whole->s, c, p->first + b, y, x)];
                    if (fabs(a - r) > e) e = fabs(a - r);
                    if (fabs(r) > m) m = fabs(r);
                }
    return e / m;
}

static double vec_err(const float *a, const float *b)
{
    return rel_err_f(a, b, C_);
}

static replay R;

/* The parts (sizes, summing to the batch) against the whole batch. */
static void check_split(const int *sizes, int nparts, const char *kernels)
{
    int b = 0;
    for (int i = 0; i < nparts; i++) b += sizes[i];
    batch k = batch_make(b);
    part whole, parts[MAX_PARTS];
    part_make(&k, &whole, 0, b);
    run_part(&k, &whole, NULL);
    for (int i = 0, at = 0; i < nparts; at += sizes[i++]) part_make(&k, &parts[i], at, sizes[i]);

    unet_sum_hook hook = {replay_sum, &R};
    memset(&R, 0, sizeof R);
    for (int round = 0; round < MAX_CALLS; round++) {
        for (int i = 0; i < nparts; i++) {
            R.part = i;
            R.call = 0;
            run_part(&k, &parts[i], &hook);
        }
        R.calls = R.call;
        if (R.known == R.calls) break;
        for (int j = 0; j < R.n[R.known]; j++) {
            double s = 0;
            for (int i = 0; i < nparts; i++) s += R.sent[i][R.known][j];
            R.sum[R.known][j] = s;
        }
        R.known++;
    }
    printf("# %s, %d parts of %d images: %d hook calls per run\n", kernels, nparts, b, R.calls);
    CHECK_INT(R.known, R.calls);

    double worst[6] = {0};
    float dg[C_] = {0}, db[C_] = {0};
    for (int i = 0; i < nparts; i++) {
        part *p = &parts[i];
        double e[6] = {vec_err(p->mean, whole.mean), vec_err(p->rstd, whole.rstd),
                       vec_err(p->rv, whole.rv), rows_err(p, p->y, &whole, whole.y),
                       rows_err(p, p->dx, &whole, whole.dx), vec_err(p->rm, whole.rm)};
        for (int j = 0; j < 6; j++) worst[j] = e[j] > worst[j] ? e[j] : worst[j];
        /* Every part got the same sums: the same statistics, bit for bit. */
        CHECK(memcmp(p->mean, parts[0].mean, sizeof p->mean) == 0);
        CHECK(memcmp(p->rstd, parts[0].rstd, sizeof p->rstd) == 0);
        CHECK(memcmp(p->rv, parts[0].rv, sizeof p->rv) == 0);
        CHECK_INT(p->nbt, 1);
        CHECK(border_ok(p->s, p->y) && border_ok(p->s, p->dx));
        for (int c = 0; c < C_; c++) {
            dg[c] += p->dg[c];
            db[c] += p->db[c];
        }
    }
    printf("#   mean %.2g, rstd %.2g, running var %.2g, y %.2g, dx %.2g, running mean %.2g\n",
           worst[0], worst[1], worst[2], worst[3], worst[4], worst[5]);
    printf("#   dgamma %.2g, dbeta %.2g (summed over the parts)\n", vec_err(dg, whole.dg),
           vec_err(db, whole.db));
    for (int j = 0; j < 6; j++) CHECK(worst[j] < 1e-5);
    CHECK(vec_err(dg, whole.dg) < 1e-5);
    CHECK(vec_err(db, whole.db) < 1e-5);
    for (int i = 0; i < nparts; i++) part_free(&parts[i]);
    part_free(&whole);
    free(k.x);
    free(k.dy);
}

static void test_sync_is_whole_batch(void)
{
    static const int two[] = {3, 2}, three[] = {2, 2, 1};
    check_split(two, 2, "optimised");
    check_split(three, 3, "optimised");
    setenv("UNET_KERNELS", "ref", 1);
    check_split(two, 2, "reference");
    check_split(three, 3, "reference");
    unsetenv("UNET_KERNELS");
}

/* A NULL hook is the plain op, bit for bit. */
static void test_null_hook_is_plain(void)
{
    batch k = batch_make(4);
    part a, b;
    part_make(&k, &a, 0, 4);
    part_make(&k, &b, 0, 4);
    run_part(&k, &a, NULL);
    memcpy(b.rm, k.rm, sizeof b.rm);
    memcpy(b.rv, k.rv, sizeof b.rv);
    b.nbt = 0;
    bn_relu_forward(b.y, b.x, b.s, k.gamma, k.beta, b.mean, b.rstd, b.rm, b.rv, &b.nbt,
                    BN_MOMENTUM, BN_EPS, b.scratch);
    bn_relu_backward(b.dx, b.dg, b.db, b.dy, b.x, b.s, k.gamma, k.beta, b.mean, b.rstd,
                     b.scratch);
    size_t n = shape_floats(a.s) * sizeof(float);
    CHECK(memcmp(a.y, b.y, n) == 0);
    CHECK(memcmp(a.dx, b.dx, n) == 0);
    CHECK(memcmp(a.rv, b.rv, sizeof a.rv) == 0);
    CHECK(memcmp(a.dg, b.dg, sizeof a.dg) == 0);
    part_free(&a);
    part_free(&b);
    free(k.x);
    free(k.dy);
}

int main(void)
{
    MG_RUN(test_sync_is_whole_batch);
    MG_RUN(test_null_hook_is_plain);
    return mg_test_exit();
}
