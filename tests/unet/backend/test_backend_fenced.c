/* SPDX-License-Identifier: MIT */
/*
 * test_backend_fenced.c: the model, the training loop, the checkpoint and
 * predict reach the arena only through the backend's table (backend.h),
 * as a device backend needs. A fenced backend wraps the CPU one: its
 * arena is mmap'ed and kept PROT_NONE except while one of its own table
 * entries runs (each entry opens the fence, calls the CPU's entry, closes
 * the fence), and it says it is not host-visible, so the model stages
 * through host buffers and the checkpoint through its host mirror. Any
 * read or write of the arena from outside the table faults.
 *
 * Through it a whole cycle runs, each step in a child process (a fault
 * kills the child, not the test, and its log says where): training that
 * a stop request ends mid-epoch (the emergency path: activations given
 * back, a checkpoint written from the mirror without allocating), the
 * resume to the end, and predict. Every number is bitwise the plain CPU
 * backend's: the checkpoints' tensors and run state, metrics.csv without
 * its timings, the logits and the masks. A first check proves the fence
 * faults at all.
 *
 * Not here: op-by-op coverage of the table (test_backend.c traces every
 * op), the numerics against PyTorch (test_unet_parity.c).
 */
#include "mg_backend_wrap.h"
#include "mg_unet_run.h"

#include "backend_cpu.h"
#include "ckpt.h"
#include "image.h"
#include "train.h"

#include <execinfo.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define TMP MG_TMPDIR "/fenced"
#define CHILD_SECONDS 100 /* alarm() in every child: bounded even if it hangs */

/* ---- the fenced backend ------------------------------------------------------------ */

static const unet_backend *cpu;
static struct {
    char *p;
    size_t len;
} fence[4];
static int nfence;
static size_t stop_at;     /* the Adam float whose call raises the stop signal, 0: none */
static size_t adam_floats; /* floats Adam updated so far */

static void fence_set(int prot)
{
    for (int i = 0; i < nfence; i++)
        if (mprotect(fence[i].p, fence[i].len, prot) != 0) {
            perror("fenced backend: mprotect");
            abort();
        }
}

static const char *f_name(void) { return "fenced"; }

static void *f_alloc(size_t bytes)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), len = (bytes + page - 1) / page * page;
    if (nfence == (int)(sizeof fence / sizeof fence[0])) return NULL;
    void *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    fence[nfence].p = p;
    fence[nfence].len = len;
    nfence++;
    return p;
}

static void f_free(void *p, size_t bytes)
{
    (void)bytes;
    for (int i = 0; i < nfence; i++)
        if (fence[i].p == p) {
            munmap(p, fence[i].len);
            fence[i] = fence[--nfence];
            return;
        }
    fprintf(stderr, "fenced backend: free of %p, which it did not allocate\n", p);
    abort();
}

/* The stop request of `memguard run`, at a chosen training step: raised
 * after the Adam call that takes the count of updated floats past
 * stop_at (the model updates its trainable floats in one or more calls a
 * step). */
static void stop_check(size_t n)
{
    const size_t before = adam_floats;
    adam_floats += n;
    if (stop_at && before < stop_at && adam_floats >= stop_at) raise(SIGUSR1);
}

static void wrap_enter(int op)
{
    (void)op;
    fence_set(PROT_READ | PROT_WRITE);
}

static void wrap_leave(int op)
{
    (void)op;
    fence_set(PROT_NONE);
}

/* The Adam entry under the stop check: the CPU's (c_adam) or the fenced
 * wrapper's (f_adam). */
static void (*f_adam_wrapped)(float *, const float *, float *, float *, size_t,
                              const adam_scalars *);

static void c_adam(float *p, const float *g, float *m, float *v, size_t n, const adam_scalars *k)
{
    cpu->adam_update(p, g, m, v, n, k);
    stop_check(n);
}

static void f_adam(float *p, const float *g, float *m, float *v, size_t n, const adam_scalars *k)
{
    f_adam_wrapped(p, g, m, v, n, k);
    stop_check(n);
}

/* Every entry that touches the arena opens the fence around the CPU's
 * (mg_backend_wrap.h); the arena is the fenced one, the host may not
 * touch it; host staging stays the CPU's (host memory). */
static unet_backend fenced(void)
{
    unet_backend t = wrap_table(cpu);
    t.name = f_name, t.alloc = f_alloc, t.free = f_free, t.host_visible = false;
    f_adam_wrapped = t.adam_update;
    t.adam_update = f_adam;
    return t;
}

/* The plain CPU backend with the same stop request. */
static unet_backend cpu_stopping(void)
{
    unet_backend t = *cpu;
    t.adam_update = c_adam;
    return t;
}

static unet_backend FENCED_BE, CPU_STOP_BE;

/* ---- children ---------------------------------------------------------------------- */

/* A fault says where it hit, so a failure names the access. */
static void on_fault(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    char msg[160];
    const char *a = si->si_addr;
    int n = snprintf(msg, sizeof msg, "fault at %p: not in the fenced arena\n", si->si_addr);
    for (int i = 0; i < nfence; i++)
        if (a >= fence[i].p && a < fence[i].p + fence[i].len)
            n = snprintf(msg, sizeof msg, "FENCE: host access to the arena at offset %zu, "
                         "outside the backend's table; backtrace:\n", (size_t)(a - fence[i].p));
    if (write(2, msg, (size_t)n) < 0) _exit(99);
    void *bt[48];
    backtrace_symbols_fd(bt, backtrace(bt, 48), 2);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Runs job(arg) in a child whose stdout and stderr go to `log`; returns
 * its exit status, or 128 + the signal that ended it. */
static int in_child(const char *log, int (*job)(const void *), const void *arg)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        MG_FAIL_("fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) _exit(126);
        close(fd);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_fault;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGSEGV, &sa, NULL);
        sigaction(SIGBUS, &sa, NULL);
        alarm(CHILD_SECONDS);
        int rc = job(arg);
        fflush(stdout);
        fflush(stderr);
        _exit(rc);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* in_child, which must end with `want`; else its log is shown. */
static bool child_ends(const char *log, int (*job)(const void *), const void *arg, int want)
{
    int rc = in_child(log, job, arg);
    if (rc == want) return true;
    char *s = slurp(log, NULL);
    MG_FAIL_("%s: exit %d, expected %d; its log:\n%s", log, rc, want, s ? s : "");
    free(s);
    return false;
}

/* ---- the fence itself -------------------------------------------------------------- */

static const unet_cfg CFG = {3, 8, 2};
enum { SIZE = 32, BATCH = 4 };

/* A model on the fenced backend, a forward through the API, then (when
 * `touch`) one read of its parameters straight from the host. */
static int fence_job(const void *arg)
{
    const bool touch = *(const bool *)arg;
    char msg[256];
    unet *m = unet_create(&CFG, BATCH, SIZE, SIZE, 1, &FENCED_BE, msg, sizeof msg);
    if (!m) return 3;
    float *in = unet_input_host(m);
    for (size_t i = 0; i < (size_t)BATCH * SIZE * SIZE * 3; i++) in[i] = (float)(i % 7) / 7.0f;
    unet_forward(m, BATCH, false);
    volatile float sum = unet_logits_host(m, BATCH)[0];
    if (touch) sum += m->params[0];
    unet_destroy(m);
    return sum == sum ? 0 : 4;
}

static void test_the_fence_faults(void)
{
    bool touch = false;
    child_ends(TMP "/fence_api.log", fence_job, &touch, 0);
    touch = true;
    child_ends(TMP "/fence_touch.log", fence_job, &touch, 128 + SIGSEGV);
    char *log = slurp(TMP "/fence_touch.log", NULL);
    CHECK_CONTAINS(log, "FENCE: host access to the arena at offset ");
    free(log);
}

/* ---- train, stop, resume, predict --------------------------------------------------- */

typedef struct train_job_args {
    const unet_backend *be;
    size_t stop_at;
    const char *out, *resume;
} train_job_args;

static int train_job(const void *arg)
{
    const train_job_args *j = arg;
    static train_opts o;
    memset(&o, 0, sizeof o);
    o.run = (run_cfg){.model = CFG, .img_size = SIZE, .batch = BATCH, .epochs = 2, .lr = 1e-3,
                      .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 1e-4,
                      .val_split = 0.25, .seed = 5, .flip = 1, .synthetic = 48};
    snprintf(o.out, sizeof o.out, "%s", j->out);
    snprintf(o.resume, sizeof o.resume, "%s", j->resume ? j->resume : "");
    o.threads = 2;
    o.progress = 0;
    o.guard = (guard_opts){.warn_ram = 0.98, .stop_ram = 0.99, .no_watcher = true};
    o.backend = j->be;
    stop_at = j->stop_at;
    return train_run(&o);
}

typedef struct predict_job_args {
    const unet_backend *be;
    const char *checkpoint, *out, *logits;
} predict_job_args;

static int predict_job(const void *arg)
{
    const predict_job_args *j = arg;
    static predict_opts o;
    memset(&o, 0, sizeof o);
    snprintf(o.checkpoint, sizeof o.checkpoint, "%s", j->checkpoint);
    snprintf(o.input, sizeof o.input, "%s", TMP "/images");
    snprintf(o.out, sizeof o.out, "%s", j->out);
    snprintf(o.logits, sizeof o.logits, "%s", j->logits);
    o.batch = 2; /* 5 images: batches of 2, 2 and 1 */
    o.threads = 2;
    o.backend = j->be;
    return predict_run(&o);
}

/* Five RGB images of other sizes than the model's, for predict. */
static void write_images(void)
{
    static const int size[5][2] = {{40, 36}, {32, 32}, {50, 20}, {17, 33}, {64, 64}};
    mkdirs(TMP "/images");
    for (int k = 0; k < 5; k++) {
        int w = size[k][0], h = size[k][1];
        uint8_t *px = malloc((size_t)w * (size_t)h * 3);
        if (!px) return;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) {
                    int dx = x - w / 2, dy = y - h / 2, in = dx * dx + dy * dy < w * h / 8;
                    px[((size_t)y * (size_t)w + (size_t)x) * 3 + (size_t)c] =
                        (uint8_t)(in ? 200 - 20 * c : (x * 7 + y * 3 + c * 50 + k * 11) % 120);
                }
        char path[512], err[512];
        snprintf(path, sizeof path, TMP "/images/img%d.png", k);
        if (unet_png_write_rgb8(path, px, w, h, err, sizeof err) < 0) MG_FAIL_("%s", err);
        free(px);
    }
}

/* A checkpoint loaded into a plain CPU model, with what it says. */
static unet *load(const char *path, ckpt_info *ci)
{
    char err[2048];
    ckpt_file *f = NULL;
    if (ckpt_open(path, &f, ci, err, sizeof err) < 0) {
        MG_FAIL_("%s", err);
        return NULL;
    }
    unet *m = unet_create(&ci->model, 1, SIZE, SIZE, 0, cpu, err, sizeof err);
    if (!m || ckpt_apply(f, m, err, sizeof err) < 0) {
        MG_FAIL_("%s: %s", path, err);
        unet_destroy(m);
        m = NULL;
    }
    ckpt_close(f);
    return m;
}

/* Two metrics.csv rows are equal but for their last two fields, the
 * images per second and the seconds. */
static bool same_row(const char *a, const char *b)
{
    char x[UT_ROW_CAP], y[UT_ROW_CAP];
    snprintf(x, sizeof x, "%s", a);
    snprintf(y, sizeof y, "%s", b);
    for (int k = 0; k < 2; k++) {
        char *cx = strrchr(x, ','), *cy = strrchr(y, ',');
        if (cx) *cx = '\0';
        if (cy) *cy = '\0';
    }
    if (strcmp(x, y) == 0) return true;
    printf("# rows differ:\n#   %s\n#   %s\n", a, b);
    return false;
}

/* Two checkpoints hold the same tensors, bit for bit, and the same run
 * state but for the time spent. */
static void same_checkpoint(const char *a_path, const char *b_path)
{
    ckpt_info ia, ib;
    unet *a = load(a_path, &ia), *b = load(b_path, &ib);
    if (a && b) {
        printf("# %s == %s\n", a_path, b_path);
        size_t pf = a->plan.params_floats * sizeof(float);
        CHECK(memcmp(a->params, b->params, pf) == 0);
        CHECK(memcmp(a->adam_m, b->adam_m, pf) == 0);
        CHECK(memcmp(a->adam_v, b->adam_v, pf) == 0);
        CHECK(memcmp(a->counts, b->counts, (size_t)a->plan.ncounts * sizeof(int64_t)) == 0);
        CHECK_INT(a->adam_step, b->adam_step);
        const run_state *x = &ia.st, *y = &ib.st;
        CHECK_INT(x->epoch, y->epoch);
        CHECK_INT(x->batch, y->batch);
        CHECK(memcmp(x->loader, y->loader, sizeof x->loader) == 0);
        CHECK(memcmp(&x->best_dice, &y->best_dice, sizeof x->best_dice) == 0);
        CHECK_INT(x->best_epoch, y->best_epoch);
        CHECK_STR(x->kind, y->kind);
        CHECK(memcmp(&x->ep_loss, &y->ep_loss, sizeof x->ep_loss) == 0);
        CHECK(memcmp(&x->ep_bce, &y->ep_bce, sizeof x->ep_bce) == 0);
        CHECK(memcmp(&x->ep_dice, &y->ep_dice, sizeof x->ep_dice) == 0);
        CHECK_INT(x->ep_images, y->ep_images);
        CHECK(same_row(x->metrics_row, y->metrics_row));
    }
    unet_destroy(a);
    unet_destroy(b);
}

static void same_file(const char *a_path, const char *b_path)
{
    size_t na = 0, nb = 0;
    char *a = slurp(a_path, &na), *b = slurp(b_path, &nb);
    CHECK(a && b);
    if (a && b && (na != nb || memcmp(a, b, na) != 0))
        MG_FAIL_("%s (%zu bytes) and %s (%zu bytes) differ", a_path, na, b_path, nb);
    free(a);
    free(b);
}

/* Row by row, the header included. */
static void same_metrics(const char *a_dir, const char *b_dir)
{
    char pa[512], pb[512];
    snprintf(pa, sizeof pa, "%s/metrics.csv", a_dir);
    snprintf(pb, sizeof pb, "%s/metrics.csv", b_dir);
    char *a = slurp(pa, NULL), *b = slurp(pb, NULL);
    CHECK(a && b);
    char *sa = NULL, *sb = NULL, *la = a ? strtok_r(a, "\n", &sa) : NULL;
    char *lb = b ? strtok_r(b, "\n", &sb) : NULL;
    int rows = 0;
    for (; la && lb; la = strtok_r(NULL, "\n", &sa), lb = strtok_r(NULL, "\n", &sb), rows++)
        CHECK(same_row(la, lb));
    CHECK(!la && !lb);
    CHECK_INT(rows, 3); /* the header and two epochs */
    free(a);
    free(b);
}

static void test_train_stop_resume_predict(void)
{
    /* The step that raises the stop: the 4th batch of epoch 2 (36
     * training samples in batches of 4: 9 a epoch). */
    char msg[256];
    unet *probe = unet_create(&CFG, 1, SIZE, SIZE, 0, cpu, msg, sizeof msg);
    CHECK(probe != NULL);
    if (!probe) return;
    const size_t stop = (9 + 3) * probe->plan.train_floats + 1;
    unet_destroy(probe);

    const train_job_args ref = {cpu, 0, TMP "/ref", NULL};
    const train_job_args cpu_stop = {&CPU_STOP_BE, stop, TMP "/cpu_stop", NULL};
    const train_job_args f_stop = {&FENCED_BE, stop, TMP "/fenced", NULL};
    const train_job_args f_resume = {&FENCED_BE, 0, TMP "/fenced",
                                     TMP "/fenced/emergency_epoch2.pth"};
    child_ends(TMP "/ref.log", train_job, &ref, 0);
    child_ends(TMP "/cpu_stop.log", train_job, &cpu_stop, 75);
    child_ends(TMP "/fenced_stop.log", train_job, &f_stop, 75);
    child_ends(TMP "/fenced_resume.log", train_job, &f_resume, 0);
    char *log = slurp(TMP "/fenced_stop.log", NULL);
    CHECK_CONTAINS(log, "backend fenced");
    CHECK_CONTAINS(log, "emergency_epoch2.pth");
    free(log);
    log = slurp(TMP "/fenced_resume.log", NULL);
    CHECK_CONTAINS(log, "resumed from " TMP "/fenced/emergency_epoch2.pth: epoch 1, batch 4");
    free(log);

    write_images();
    const predict_job_args p_cpu = {cpu, TMP "/ref/last.pth", TMP "/pred_cpu",
                                    TMP "/pred_cpu.npy"};
    const predict_job_args p_fenced = {&FENCED_BE, TMP "/ref/last.pth", TMP "/pred_fenced",
                                       TMP "/pred_fenced.npy"};
    child_ends(TMP "/pred_cpu.log", predict_job, &p_cpu, 0);
    child_ends(TMP "/pred_fenced.log", predict_job, &p_fenced, 0);

    /* The same numbers, to the bit. */
    same_checkpoint(TMP "/cpu_stop/emergency_epoch2.pth", TMP "/fenced/emergency_epoch2.pth");
    same_checkpoint(TMP "/ref/last.pth", TMP "/fenced/last.pth");
    same_checkpoint(TMP "/ref/best.pth", TMP "/fenced/best.pth");
    same_metrics(TMP "/ref", TMP "/fenced");
    same_file(TMP "/pred_cpu.npy", TMP "/pred_fenced.npy");
    for (int k = 0; k < 5; k++) {
        char a[256], b[256];
        snprintf(a, sizeof a, TMP "/pred_cpu/img%d.png", k);
        snprintf(b, sizeof b, TMP "/pred_fenced/img%d.png", k);
        same_file(a, b);
    }
}

int main(void)
{
    cpu = unet_backend_cpu();
    FENCED_BE = fenced();
    CPU_STOP_BE = cpu_stopping();
    mg_rm_rf(TMP);
    mkdirs(TMP);
    MG_RUN(test_the_fence_faults);
    MG_RUN(test_train_stop_resume_predict);
    if (mg_test_failed_checks == 0) mg_rm_rf(TMP);
    return mg_test_exit();
}
