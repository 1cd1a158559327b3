/* SPDX-License-Identifier: MIT */
/*
 * main.c: the unet-train command line: `train` (the default), `predict`
 * and `plan`, and the --config INI file, which sets the same options.
 * Every value is checked here with one grammar (the library's mg_parse_*
 * for integers, sizes and fractions, settings.c's for reals) and one range
 * table (settings.c); an option another job takes, an option given twice,
 * a path that is empty, too long or looks like an option, are refused.
 * Anything wrong is one line on stderr naming the option or the file and
 * line (or UNET_KERNELS, UNET_WINOGRAD), and exit status 2, before anything is created;
 * under mpirun a train job's line is said once for all ranks
 * (train_refuse), and predict, plan, --help and --version are rank 0's.
 * The filled options go to train.c / predict.c / plan_run. Nothing here
 * trains or writes, and the file's syntax (lines, comments, quotes) is
 * config_file.c's.
 */
#include "train.h"

#include "config_file.h"
#include "errf.h"
#include "isa.h" /* UNET_KERNELS and UNET_WINOGRAD, checked before any job */
#include "memguard.h"
#include "settings.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static void usage(FILE *f)
{
    fputs(
"Usage: unet-train [train] [OPTIONS]      train a UNet for binary segmentation\n"
"       unet-train predict --checkpoint FILE --input DIR --out DIR [--logits FILE.npy]\n"
"                          [--overlay DIR]\n"
"       unet-train plan --batch B --img-size S [--base W --depth D --in-ch C]\n"
"\n"
"Data:\n"
"      --data DIR        DIR/images/ and DIR/masks/ (PNG or JPEG, paired by name)\n"
"      --synthetic N     the built-in set of N shapes on textured noise\n"
"                        (the default, with N = 240, when --data is not given)\n"
"      --img-size S      resize to SxS (default 128; a multiple of 2^depth)\n"
"      --in-ch 1|3       gray or RGB input (default 3)\n"
"      --val-split F     fraction held out for validation (default 0.2)\n"
"      --flip            random horizontal and vertical flips\n"
"      --seed N          split, shuffling, flips and weights (default 0)\n"
"Model and optimiser:\n"
"      --base W          channels of the first level (default 16)\n"
"      --depth D         levels (default 4)\n"
"      --epochs N        (default 20)\n"
"      --batch B         (default 4)\n"
"      --lr F            Adam learning rate (default 0.001)\n"
"      --beta1 F --beta2 F --eps F --weight-decay F   (torch's defaults)\n"
"Run:\n"
"      --out DIR         last.pth, best.pth, metrics.csv, curves.svg (default runs/unet)\n"
"      --resume FILE     continue from a checkpoint (ours or a PyTorch state_dict)\n"
"      --threads N       OpenMP threads (default: all cores)\n"
"      --precision fp32|bf16  convolutions in float32 (default) or bf16 (products of\n"
"                        bfloat16, float32 sums, weights, Adam state and checkpoints;\n"
"                        needs a CPU with AVX512_BF16)\n"
"      --progress bar|lines  progress display (default: bar on a terminal)\n"
"      --config FILE     INI file of the same settings (key = value, keys like\n"
"                        img_size, batch, warn_gpu; flags override the file)\n"
"Data parallel (mpirun -np K unet-train ...: --batch is the global batch, split\n"
"over the K ranks; see unet-train(1)):\n"
"      --sync-bn         BatchNorm statistics over all ranks (SyncBatchNorm);\n"
"                        default: each rank's own shard (DDP's default)\n"
"Memory guard (the seed's monitor; see memguard(1)):\n"
"      --warn-gpu F --stop-gpu F --warn-ram F --stop-ram F   thresholds (0.9 or 90%);\n"
"                        default: the seed's row for the batch size (4: 90/92 85/88,\n"
"                        6: 88/90 83/86, 8: 85/88 80/84; others the nearest row)\n"
"      --check-train N   check every N training batches (default 10)\n"
"      --check-eval N    check every N evaluation batches (default 15)\n"
"      --ram-budget SIZE all the RAM this run may use (e.g. 2G), as in memguard run\n"
"      --no-watcher      no background watcher thread between checks\n"
"      --no-predict      act at the thresholds only, not ahead of a fast fill\n"
"      --batch auto      the largest batch whose planned memory stays below warn\n"
"      --on-memory stop|shrink  at the stop threshold: save and exit 75 (stop, the\n"
"                        default), or save and go on at a smaller batch (shrink:\n"
"                        8 -> 6 -> 4 -> 2 -> 1, or what fits below warn)\n"
"predict:\n"
"      --checkpoint FILE --input DIR --out DIR [--logits FILE.npy] [--img-size S] [--batch B]\n"
"      [--threads N] [--overlay DIR] [--precision fp32|bf16]: one STEM.png mask per image;\n"
"      --overlay DIR also writes DIR/STEM.png, the image with its mask's outline in red;\n"
"      neither may be --input\n"
"plan:\n"
"      --batch B --img-size S [--base W] [--depth D] [--in-ch C]: bytes needed, nothing allocated\n"
"\n"
"      --help, --version\n"
"Each option once, and only to a command that takes it; integers are plain digits.\n"
"Exit status: 0 done, 1 runtime error, 2 bad flags, data or checkpoint (one line\n"
"says which), 75 stopped for memory after saving emergency_epochN.pth.\n", f);
}


/* ---- messages ------------------------------------------------------------------ */

/* Whether an MPI launcher (Open MPI's mpirun, PMIx, PMI: their environment,
 * read before any MPI starts) made this process a rank other than 0.
 * Under mpirun, predict, plan, --help and --version are rank 0's alone:
 * K ranks would each do and say all of it. */
static bool not_rank0(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", NULL};
    for (const char *const *v = vars; *v; v++) {
        const char *r = getenv(*v);
        if (r) return strcmp(r, "0") != 0;
    }
    return false;
}

/* Set while options come from --config, so errors name the file and line. */
static char where[UT_PATH_MAX + 64];
/* The last refusal's line; a train job says it through train_refuse (once
 * under mpirun, not once per rank), the other jobs at once. */
static char said[2 * UT_PATH_MAX + 512];
static bool hold_said;

static int bad(const char *fmt, ...) UNET_PRINTF(1, 2);
static int bad(const char *fmt, ...)
{
    va_list ap;
    size_t u = (size_t)snprintf(said, sizeof said, "%s", where);
    va_start(ap, fmt);
    vsnprintf(said + u, sizeof said - u, fmt, ap);
    va_end(ap);
    if (!hold_said) fprintf(stderr, "unet-train: %s\n", said); /* one write: ranks interleave */
    return MG_EXIT_USAGE;
}

/* A value as a message shows it: quoted, control bytes escaped, a long
 * one cut, so the message stays one short line. Two calls per message at
 * most (two buffers). */
static const char *shown(const char *s)
{
    static char buf[2][100];
    static int next;
    char *b = buf[next++ & 1];
    size_t u = 0;
    const unsigned char *p = (const unsigned char *)s;
    b[u++] = '\'';
    for (; *p && u < 80; p++) {
        if (*p >= 0x20 && *p != 0x7f) b[u++] = (char)*p;
        else u += (size_t)snprintf(b + u, sizeof buf[0] - u, "\\x%02x", *p);
    }
    snprintf(b + u, sizeof buf[0] - u, "%s'", *p ? "..." : "");
    return b;
}

/* ---- the options ----------------------------------------------------------------- */

enum {
    O_DATA = 300, O_SYNTH, O_IMG, O_INCH, O_VAL, O_FLIP, O_SEED, O_BASE, O_DEPTH, O_EPOCHS,
    O_BATCH, O_LR, O_B1, O_B2, O_EPS, O_WD, O_OUT, O_RESUME, O_THREADS, O_PROGRESS, O_CKPT,
    O_INPUT, O_LOGITS, O_OVERLAY, O_HELP, O_VERSION, O_WARN_GPU, O_STOP_GPU, O_WARN_RAM, O_STOP_RAM,
    O_CHECK_TRAIN, O_CHECK_EVAL, O_RAM_BUDGET, O_NO_WATCHER, O_NO_PREDICT, O_ON_MEMORY, O_CONFIG,
    O_SYNC_BN, O_PRECISION, O_END
};

static const struct option longopts[] = {
    {"data", required_argument, NULL, O_DATA},
    {"synthetic", required_argument, NULL, O_SYNTH},
    {"img-size", required_argument, NULL, O_IMG},
    {"in-ch", required_argument, NULL, O_INCH},
    {"val-split", required_argument, NULL, O_VAL},
    {"flip", no_argument, NULL, O_FLIP},
    {"seed", required_argument, NULL, O_SEED},
    {"base", required_argument, NULL, O_BASE},
    {"depth", required_argument, NULL, O_DEPTH},
    {"epochs", required_argument, NULL, O_EPOCHS},
    {"batch", required_argument, NULL, O_BATCH},
    {"lr", required_argument, NULL, O_LR},
    {"beta1", required_argument, NULL, O_B1},
    {"beta2", required_argument, NULL, O_B2},
    {"eps", required_argument, NULL, O_EPS},
    {"weight-decay", required_argument, NULL, O_WD},
    {"out", required_argument, NULL, O_OUT},
    {"resume", required_argument, NULL, O_RESUME},
    {"threads", required_argument, NULL, O_THREADS},
    {"progress", required_argument, NULL, O_PROGRESS},
    {"checkpoint", required_argument, NULL, O_CKPT},
    {"input", required_argument, NULL, O_INPUT},
    {"logits", required_argument, NULL, O_LOGITS},
    {"overlay", required_argument, NULL, O_OVERLAY},
    {"warn-gpu", required_argument, NULL, O_WARN_GPU},
    {"stop-gpu", required_argument, NULL, O_STOP_GPU},
    {"warn-ram", required_argument, NULL, O_WARN_RAM},
    {"stop-ram", required_argument, NULL, O_STOP_RAM},
    {"check-train", required_argument, NULL, O_CHECK_TRAIN},
    {"check-eval", required_argument, NULL, O_CHECK_EVAL},
    {"ram-budget", required_argument, NULL, O_RAM_BUDGET},
    {"no-watcher", no_argument, NULL, O_NO_WATCHER},
    {"no-predict", no_argument, NULL, O_NO_PREDICT},
    {"on-memory", required_argument, NULL, O_ON_MEMORY},
    {"precision", required_argument, NULL, O_PRECISION},
    {"config", required_argument, NULL, O_CONFIG},
    {"sync-bn", no_argument, NULL, O_SYNC_BN},
    {"help", no_argument, NULL, O_HELP},
    {"version", no_argument, NULL, O_VERSION},
    {0, 0, 0, 0}};

enum { J_TRAIN = 1, J_PREDICT = 2, J_PLAN = 4, J_ALL = 7 };

static const char *job_name(unsigned job)
{
    return job == J_PREDICT ? "predict" : job == J_PLAN ? "plan" : "train";
}

/* The jobs an option is for. */
static unsigned jobs_of(int opt)
{
    switch (opt) {
    case O_CKPT: case O_INPUT: case O_LOGITS: case O_OVERLAY: return J_PREDICT;
    case O_OUT: case O_THREADS: case O_PRECISION: return J_TRAIN | J_PREDICT;
    case O_BASE: case O_DEPTH: case O_INCH: return J_TRAIN | J_PLAN;
    case O_IMG: case O_BATCH: case O_CONFIG: case O_HELP: case O_VERSION: return J_ALL;
    default: return J_TRAIN;
    }
}

static const struct option *opt_def(int opt)
{
    for (const struct option *q = longopts; q->name; q++)
        if (q->val == opt) return q;
    return NULL;
}

typedef struct cli {
    unsigned job;
    train_opts t;
    predict_opts p;
    bool size_given, batch_given, out_given;
    bool bf16; /* --precision bf16 */
} cli;

/* ---- values ---------------------------------------------------------------------- */

/* A path: not empty, not an option (a value "--img-size" means the value
 * was left out), no control characters, shorter than UT_PATH_MAX. Copied,
 * so nothing points into the caller's buffer (a --config line). */
static int path_opt(const char *flag, const char *arg, char *dst)
{
    if (!*arg) return bad("--%s '': expected a path", flag);
    if (arg[0] == '-')
        return bad("--%s %s: expected a path, not an option (a file whose name starts with '-' "
                   "is written ./NAME)", flag, shown(arg));
    for (const unsigned char *p = (const unsigned char *)arg; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return bad("--%s %s: a path with a control character is not accepted", flag,
                       shown(arg));
    if (strlen(arg) >= UT_PATH_MAX)
        return bad("--%s %s: path too long (%zu bytes, at most %d)", flag, shown(arg),
                   strlen(arg), UT_PATH_MAX - 1);
    memcpy(dst, arg, strlen(arg) + 1);
    return 0;
}

/* A number of the settings table (settings.h), by the option's name. */
static int number_opt(const char *flag, const char *arg, double *out)
{
    char key[32];
    size_t n = 0;
    for (; flag[n] && n + 1 < sizeof key; n++) key[n] = flag[n] == '-' ? '_' : flag[n];
    key[n] = '\0';
    const ut_setting *s = ut_setting_find(key);
    uint64_t u = 0;
    double v = 0;
    bool ok;
    if (s->integer) {
        ok = mg_parse_uint(arg, (uint64_t)s->hi, &u) == 0;
        v = (double)u;
    } else {
        ok = ut_parse_real(arg, &v) == 0;
    }
    if (!ok || !ut_setting_ok(s, v)) {
        char allowed[96];
        ut_setting_describe(s, allowed, sizeof allowed);
        return bad("--%s %s: expected %s", flag, shown(arg), allowed);
    }
    *out = v;
    return 0;
}

static int int_opt(const char *flag, const char *arg, int *out)
{
    double v;
    int rc = number_opt(flag, arg, &v);
    if (rc == 0) *out = (int)v;
    return rc;
}

static int frac_opt(const char *flag, const char *arg, double *out)
{
    if (mg_parse_frac(arg, out) < 0)
        return bad("--%s %s: expected a fraction in (0, 1], such as 0.9 or 90%%", flag,
                   shown(arg));
    return 0;
}

static int batch_opt(cli *k, const char *arg)
{
    k->batch_given = true;
    k->t.batch_auto = strcmp(arg, "auto") == 0;
    if (k->t.batch_auto) {
        if (k->job != J_TRAIN)
            return bad("--batch 'auto': %s takes a number from 1 to 4096", job_name(k->job));
        return 0;
    }
    uint64_t v;
    if (mg_parse_uint(arg, 4096, &v) < 0 || v < 1)
        return bad("--batch %s: expected an integer from 1 to 4096%s", shown(arg),
                   k->job == J_TRAIN ? ", or auto" : "");
    k->t.run.batch = (int)v;
    return 0;
}

static int seed_opt(run_cfg *c, const char *arg)
{
    if (mg_parse_uint(arg, UINT64_MAX, &c->seed) < 0)
        return bad("--seed %s: expected an integer from 0 to 18446744073709551615", shown(arg));
    return 0;
}

static int progress_opt(cli *k, const char *arg)
{
    if (strcmp(arg, "bar") == 0) k->t.progress = 1;
    else if (strcmp(arg, "lines") == 0) k->t.progress = 0;
    else return bad("--progress %s: expected bar or lines", shown(arg));
    return 0;
}

static int on_memory_opt(cli *k, const char *arg)
{
    if (strcmp(arg, "stop") == 0) k->t.shrink = false;
    else if (strcmp(arg, "shrink") == 0) k->t.shrink = true;
    else return bad("--on-memory %s: expected stop or shrink", shown(arg));
    return 0;
}

static int budget_opt(cli *k, const char *arg)
{
    if (mg_parse_size(arg, &k->t.guard.ram_budget) < 0)
        return bad("--ram-budget %s: expected a size above 0, such as 512M or 8G", shown(arg));
    return 0;
}

static int cadence_opt(const char *flag, const char *arg, unsigned *out)
{
    int v = 0;
    int rc = int_opt(flag, arg, &v);
    if (rc == 0) *out = (unsigned)v;
    return rc;
}

static int real_opt(const char *flag, const char *arg, double *out)
{
    return number_opt(flag, arg, out);
}

/* Applies one option (from the command line or the config file). Returns
 * 0, or an exit status after printing; -1 means "done, exit 0" (--help). */
static int set_opt(cli *k, int opt, const char *arg)
{
    run_cfg *c = &k->t.run;
    const char *f = opt_def(opt)->name;
    switch (opt) {
    case O_DATA: return path_opt(f, arg, c->data);
    case O_OUT: k->out_given = true; return path_opt(f, arg, k->t.out);
    case O_RESUME: return path_opt(f, arg, k->t.resume);
    case O_CKPT: return path_opt(f, arg, k->p.checkpoint);
    case O_INPUT: return path_opt(f, arg, k->p.input);
    case O_LOGITS: return path_opt(f, arg, k->p.logits);
    case O_OVERLAY: return path_opt(f, arg, k->p.overlay);
    case O_SYNTH: return int_opt(f, arg, &c->synthetic);
    case O_IMG: k->size_given = true; return int_opt(f, arg, &c->img_size);
    case O_INCH: return int_opt(f, arg, &c->model.in_ch);
    case O_BASE: return int_opt(f, arg, &c->model.base);
    case O_DEPTH: return int_opt(f, arg, &c->model.depth);
    case O_EPOCHS: return int_opt(f, arg, &c->epochs);
    case O_THREADS: return int_opt(f, arg, &k->t.threads);
    case O_VAL: return real_opt(f, arg, &c->val_split);
    case O_LR: return real_opt(f, arg, &c->lr);
    case O_B1: return real_opt(f, arg, &c->beta1);
    case O_B2: return real_opt(f, arg, &c->beta2);
    case O_EPS: return real_opt(f, arg, &c->eps);
    case O_WD: return real_opt(f, arg, &c->weight_decay);
    case O_SEED: return seed_opt(c, arg);
    case O_BATCH: return batch_opt(k, arg);
    case O_PROGRESS: return progress_opt(k, arg);
    case O_WARN_GPU: return frac_opt(f, arg, &k->t.guard.warn_gpu);
    case O_STOP_GPU: return frac_opt(f, arg, &k->t.guard.stop_gpu);
    case O_WARN_RAM: return frac_opt(f, arg, &k->t.guard.warn_ram);
    case O_STOP_RAM: return frac_opt(f, arg, &k->t.guard.stop_ram);
    case O_CHECK_TRAIN: return cadence_opt(f, arg, &k->t.guard.check_train);
    case O_CHECK_EVAL: return cadence_opt(f, arg, &k->t.guard.check_eval);
    case O_RAM_BUDGET: return budget_opt(k, arg);
    case O_ON_MEMORY: return on_memory_opt(k, arg);
    case O_FLIP: c->flip = 1; return 0;
    case O_NO_WATCHER: k->t.guard.no_watcher = true; return 0;
    case O_NO_PREDICT: k->t.guard.no_predict = true; return 0;
    case O_SYNC_BN: k->t.sync_bn = true; return 0;
    case O_PRECISION:
        if (strcmp(arg, "fp32") != 0 && strcmp(arg, "bf16") != 0)
            return bad("--precision %s: expected fp32 or bf16", shown(arg));
        k->bf16 = strcmp(arg, "bf16") == 0;
        return 0;
    case O_HELP:
        if (!not_rank0()) usage(stdout);
        return -1;
    case O_VERSION:
        if (!not_rank0()) printf("unet-train %s\n", MG_VERSION_STRING);
        return -1;
    default: return bad("unknown option");
    }
}

/* ---- --config ---------------------------------------------------------------------- */

/* The option a config key names: the long option with '_' for '-', in
 * any case (the seed's CFG names such as IMG_SIZE work). */
static const struct option *key_option(const char *key)
{
    char name[32];
    size_t n = 0;
    for (; key[n]; n++) {
        if (n + 1 >= sizeof name) return NULL;
        name[n] = key[n] == '_' ? '-' : (char)(key[n] >= 'A' && key[n] <= 'Z' ? key[n] + 32 : key[n]);
    }
    name[n] = '\0';
    for (const struct option *q = longopts; q->name; q++)
        if (strcmp(q->name, name) == 0 && q->val != O_CONFIG && q->val != O_HELP &&
            q->val != O_VERSION)
            return q;
    return NULL;
}

/* A boolean key: true/false (also yes/no, 1/0). */
static int bool_key(cli *k, const struct option *o, const char *key, const char *v)
{
    if (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcasecmp(v, "yes") == 0)
        return set_opt(k, o->val, NULL);
    if (strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0 || strcasecmp(v, "no") == 0)
        return 0;
    return bad("%s %s: expected true or false", key, shown(v));
}

/* The --config file being applied: the options it fills, and the line
 * that set each option (a key given twice names the first). */
typedef struct config_run {
    cli *k;
    const char *path;
    int seen[O_END - O_DATA];
} config_run;

/* Messages name the file and line from here on. */
static void config_where(const char *path, int lineno)
{
    snprintf(where, sizeof where, "--config %s line %d: ", path, lineno);
}

/* One "key = value" of the file (config_file.c has the syntax). */
static int config_pair(void *arg, int lineno, char *key, char *v)
{
    config_run *r = arg;
    cli *k = r->k;
    config_where(r->path, lineno);
    const struct option *o = key_option(key);
    if (!o)
        return bad("unknown key %s (keys are the long options, e.g. img_size, batch, warn_gpu, "
                   "resume)", shown(key));
    if (!(jobs_of(o->val) & k->job))
        return bad("key %s is not a setting of %s", shown(key), job_name(k->job));
    if (r->seen[o->val - O_DATA])
        return bad("key %s given twice (first on line %d)", shown(key), r->seen[o->val - O_DATA]);
    r->seen[o->val - O_DATA] = lineno;
    int rc = o->has_arg == no_argument ? bool_key(k, o, key, v) : set_opt(k, o->val, v);
    return rc < 0 ? MG_EXIT_USAGE : rc;
}

/* --config FILE: "key = value" lines; '#' and ';' start comments, [sections]
 * are ignored. Boolean flags take true/false. Flags given on the command
 * line win: the file is applied first. A line longer than 2047 characters
 * or holding a NUL byte is refused (not split or cut). */
static int load_config(cli *k, const char *path)
{
    char err[UT_PATH_MAX + 128];
    if (strlen(path) >= UT_PATH_MAX) return bad("--config %s: path too long", shown(path));
    config_run r = {.k = k, .path = path};
    int lineno = 0;
    int rc = config_file_read(path, config_pair, &r, &lineno, err, sizeof err);
    if (rc < 0 && lineno > 0) config_where(path, lineno);
    if (rc < 0) rc = lineno > 0 ? bad("%s", err) : bad("--config %s", err);
    where[0] = '\0';
    return rc;
}

/* ---- the command line ----------------------------------------------------------------- */

/* The option getopt_long stopped at, for messages. */
static int getopt_error(int opt, char **argv)
{
    const char *a = argv[optind - 1];
    if (opt == ':') return bad("option %s needs a value", shown(a));
    if (optopt >= O_DATA && optopt < O_END)
        return bad("option --%s takes no value (%s)", opt_def(optopt)->name, shown(a));
    return bad("unknown option %s", shown(a));
}

/* First pass: errors of form, and the --config file (so flags override it). */
static int first_pass(cli *k, int argc, char **argv, int first)
{
    bool config_seen = false;
    int opt, rc;
    opterr = 0;
    optind = first;
    while ((opt = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        if (opt == ':' || opt == '?') return getopt_error(opt, argv);
        if (opt != O_CONFIG) continue;
        if (config_seen) return bad("--config given twice");
        config_seen = true;
        if ((rc = load_config(k, optarg)) != 0) return rc;
    }
    return 0;
}

/* Second pass: the flags themselves; each once, each for this job. */
static int second_pass(cli *k, int argc, char **argv, int first)
{
    bool seen[O_END - O_DATA] = {false};
    int opt;
    optind = first;
    while ((opt = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        const char *name = opt_def(opt)->name;
        if (opt == O_HELP || opt == O_VERSION) return set_opt(k, opt, optarg);
        if (opt == O_CONFIG) continue;
        if (!(jobs_of(opt) & k->job))
            return bad("--%s is not an option of %s (see unet-train --help)", name,
                       job_name(k->job));
        if (seen[opt - O_DATA]) return bad("--%s given twice", name);
        seen[opt - O_DATA] = true;
        int rc = set_opt(k, opt, optarg);
        if (rc) return rc;
    }
    if (optind < argc) return bad("unexpected argument %s", shown(argv[optind]));
    return 0;
}

static void defaults(cli *k)
{
    run_cfg *c = &k->t.run;
    c->model = (unet_cfg){3, 16, 4};
    c->img_size = 128;
    c->batch = 4;
    c->epochs = 20;
    c->lr = 1e-3;
    c->beta1 = 0.9;
    c->beta2 = 0.999;
    c->eps = 1e-8;
    c->val_split = 0.2;
    snprintf(k->t.out, sizeof k->t.out, "runs/unet");
    k->t.progress = -1;
}

static int run_predict(cli *k)
{
    predict_opts *p = &k->p;
    if (!p->checkpoint[0]) return bad("predict: --checkpoint FILE is required");
    if (!p->input[0]) return bad("predict: --input DIR is required");
    if (!k->out_given) return bad("predict: --out DIR is required");
    snprintf(p->out, sizeof p->out, "%s", k->t.out);
    p->img_size = k->size_given ? k->t.run.img_size : 0;
    p->batch = k->t.run.batch;
    p->threads = k->t.threads;
    return predict_run(p);
}

/* The command line into k and the checks before any job; 0, -1 (done:
 * --help, --version) or the exit status of a refusal (bad() has its line). */
static int parse(cli *k, int argc, char **argv)
{
    int first = 1;
    k->job = J_TRAIN;
    if (argc > 1 && argv[1][0] != '-') {
        if (strcmp(argv[1], "predict") == 0) k->job = J_PREDICT;
        else if (strcmp(argv[1], "plan") == 0) k->job = J_PLAN;
        else if (strcmp(argv[1], "train") != 0)
            return bad("unknown command %s: expected train, predict or plan", shown(argv[1]));
        first = 2;
    }
    defaults(k);
    int rc = first_pass(k, argc, argv, first);
    if (rc == 0) rc = second_pass(k, argc, argv, first);
    if (rc) return rc;
    char kerr[160];
    if (unet_kernels_check(kerr, sizeof kerr) < 0) return bad("%s", kerr);
    if (unet_winograd_check(kerr, sizeof kerr) < 0) return bad("%s", kerr);
    if (k->bf16) {
        if (unet_bf16_check(kerr, sizeof kerr) < 0) return bad("%s", kerr);
        k->t.backend = k->p.backend = unet_backend_cpu_bf16();
    }
    run_cfg *c = &k->t.run;
    if (k->job != J_PREDICT && c->img_size % (1 << c->model.depth) != 0)
        return bad("--img-size %d: expected a multiple of %d (2^depth, with --depth %d)",
                   c->img_size, 1 << c->model.depth, c->model.depth);
    if (k->job == J_TRAIN && c->data[0] && c->synthetic)
        return bad("--data and --synthetic exclude each other: give one");
    return 0;
}

int main(int argc, char **argv)
{
    static cli k;
    /* A train job's refusal waits for train_refuse: a bad flag under
     * mpirun is then one line, not one per rank. A "train" that turns out
     * to be an unknown command is a train job too. */
    hold_said = !(argc > 1 && (strcmp(argv[1], "predict") == 0 || strcmp(argv[1], "plan") == 0));
    if (!hold_said && not_rank0()) return MG_EXIT_OK;
    int rc = parse(&k, argc, argv);
    if (rc < 0) return MG_EXIT_OK;
    if (rc) return k.job == J_TRAIN ? train_refuse(rc, said) : rc;
    run_cfg *c = &k.t.run;
    if (k.job == J_PLAN) return plan_run(&c->model, c->batch, c->img_size);
    if (k.job == J_PREDICT) return run_predict(&k);
    if (!c->data[0] && !c->synthetic) c->synthetic = 240;
    return train_run(&k.t);
}
