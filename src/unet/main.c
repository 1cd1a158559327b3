/* SPDX-License-Identifier: MIT */
/*
 * main.c: the unet-train command line: `train` (the default), `predict`
 * and `plan`. It parses and validates flags with the library's strict
 * number parsers, prints one line plus "Try 'unet-train --help'." for
 * anything wrong (exit 2), and hands a filled options struct to train.c /
 * predict.c. Nothing here trains.
 */
#include "train.h"

#include "memguard.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void usage(FILE *f)
{
    fputs(
"Usage: unet-train [train] [OPTIONS]      train a UNet for binary segmentation\n"
"       unet-train predict --checkpoint FILE --input DIR --out DIR [--logits FILE.npy]\n"
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
"      --out DIR         last.pth, best.pth, metrics.csv (default runs/unet)\n"
"      --resume FILE     continue from a checkpoint (ours or a PyTorch state_dict)\n"
"      --threads N       OpenMP threads (default: all cores)\n"
"      --progress bar|lines  progress display (default: bar on a terminal)\n"
"      --config FILE     INI file of the same settings (key = value, keys like\n"
"                        img_size, batch, warn_gpu; flags override the file)\n"
"Memory guard (the seed's monitor; see memguard(1)):\n"
"      --warn-gpu F --stop-gpu F --warn-ram F --stop-ram F   thresholds (0.9 or 90%);\n"
"                        default: the seed's row for the batch size (4: 90/92 85/88,\n"
"                        6: 88/90 83/86, 8: 85/88 80/84; others the nearest row)\n"
"      --check-train N   check every N training batches (default 10)\n"
"      --check-eval N    check every N evaluation batches (default 15)\n"
"      --ram-budget SIZE all the RAM this run may use (e.g. 2G), as in memguard run\n"
"      --no-watcher      no background watcher thread between checks\n"
"      --batch auto      the largest batch whose planned memory stays below warn\n"
"predict:\n"
"      --checkpoint FILE --input DIR --out DIR [--logits FILE.npy] [--img-size S] [--batch B]\n"
"plan:\n"
"      --batch B --img-size S [--base W] [--depth D] [--in-ch C]: bytes needed, nothing allocated\n"
"\n"
"      --help, --version\n"
"Exit status: 0 done, 1 runtime error, 2 bad flags, data or checkpoint,\n"
"75 stopped for memory after saving emergency_epochN.pth (resume with --resume).\n", f);
}

/* Set while options come from --config, so errors name the file and line. */
static char where[1200];

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "unet-train: %s", where);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'unet-train --help'.\n", stderr);
    return UT_EXIT_USAGE;
}

static int int_arg(const char *flag, const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return bad("%s '%s': expected an integer from %ld to %ld", flag, s, lo, hi);
    *out = (int)v;
    return 0;
}

static int real_arg(const char *flag, const char *s, double lo, double hi, bool lo_open,
                    double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v > hi || v < lo || (lo_open && v == lo))
        return bad("%s '%s': expected a number in %s%g, %g]", flag, s, lo_open ? "(" : "[", lo,
                   hi);
    *out = v;
    return 0;
}

enum {
    O_DATA = 300, O_SYNTH, O_IMG, O_INCH, O_VAL, O_FLIP, O_SEED, O_BASE, O_DEPTH, O_EPOCHS,
    O_BATCH, O_LR, O_B1, O_B2, O_EPS, O_WD, O_OUT, O_RESUME, O_THREADS, O_PROGRESS, O_CKPT,
    O_INPUT, O_LOGITS, O_HELP, O_VERSION, O_WARN_GPU, O_STOP_GPU, O_WARN_RAM, O_STOP_RAM,
    O_CHECK_TRAIN, O_CHECK_EVAL, O_RAM_BUDGET, O_NO_WATCHER, O_CONFIG
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
    {"warn-gpu", required_argument, NULL, O_WARN_GPU},
    {"stop-gpu", required_argument, NULL, O_STOP_GPU},
    {"warn-ram", required_argument, NULL, O_WARN_RAM},
    {"stop-ram", required_argument, NULL, O_STOP_RAM},
    {"check-train", required_argument, NULL, O_CHECK_TRAIN},
    {"check-eval", required_argument, NULL, O_CHECK_EVAL},
    {"ram-budget", required_argument, NULL, O_RAM_BUDGET},
    {"no-watcher", no_argument, NULL, O_NO_WATCHER},
    {"config", required_argument, NULL, O_CONFIG},
    {"help", no_argument, NULL, O_HELP},
    {"version", no_argument, NULL, O_VERSION},
    {0, 0, 0, 0}};

typedef struct cli {
    train_opts t;
    predict_opts p;
    bool size_given, batch_given, out_given;
} cli;

static int frac_opt(const char *flag, const char *arg, double *out)
{
    if (mg_parse_frac(arg, out) < 0)
        return bad("%s '%s': expected a fraction in (0, 1], such as 0.9 or 90%%", flag, arg);
    return 0;
}

/* Applies one option (from the command line or the config file). Returns 0,
 * or an exit status after printing; -1 means "done, exit 0" (--help). */
static int set_opt(cli *k, int opt, const char *optarg)
{
    run_cfg *c = &k->t.run;
    int rc = 0;
    switch (opt) {
    case O_DATA:
        if (!*optarg) return bad("--data '': expected a folder");
        snprintf(c->data, sizeof c->data, "%s", optarg);
        break;
    case O_SYNTH: rc = int_arg("--synthetic", optarg, 2, 1000000, &c->synthetic); break;
    case O_IMG: rc = int_arg("--img-size", optarg, 8, 8192, &c->img_size); k->size_given = true; break;
    case O_INCH: rc = int_arg("--in-ch", optarg, 1, 3, &c->model.in_ch);
        if (!rc && c->model.in_ch == 2) rc = bad("--in-ch '2': expected 1 (gray) or 3 (RGB)");
        break;
    case O_VAL: rc = real_arg("--val-split", optarg, 0, 0.95, false, &c->val_split); break;
    case O_FLIP: c->flip = 1; break;
    case O_SEED: {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(optarg, &end, 10);
        if (errno || end == optarg || *end || optarg[0] == '-')
            return bad("--seed '%s': expected a non-negative integer", optarg);
        c->seed = v;
        break;
    }
    case O_BASE: rc = int_arg("--base", optarg, 8, 256, &c->model.base); break;
    case O_DEPTH: rc = int_arg("--depth", optarg, 1, 6, &c->model.depth); break;
    case O_EPOCHS: rc = int_arg("--epochs", optarg, 1, 1000000, &c->epochs); break;
    case O_BATCH:
        k->batch_given = true;
        if (strcmp(optarg, "auto") == 0) {
            k->t.batch_auto = true;
            break;
        }
        k->t.batch_auto = false;
        {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || v < 1 || v > 4096)
                return bad("--batch '%s': expected an integer from 1 to 4096, or auto", optarg);
            c->batch = (int)v;
        }
        break;
    case O_LR: rc = real_arg("--lr", optarg, 0, 10, true, &c->lr); break;
    case O_B1: rc = real_arg("--beta1", optarg, 0, 0.999999, false, &c->beta1); break;
    case O_B2: rc = real_arg("--beta2", optarg, 0, 0.999999999, false, &c->beta2); break;
    case O_EPS: rc = real_arg("--eps", optarg, 0, 1, true, &c->eps); break;
    case O_WD: rc = real_arg("--weight-decay", optarg, 0, 1, false, &c->weight_decay); break;
    case O_OUT:
        if (!*optarg) return bad("--out '': expected a folder");
        snprintf(k->t.out, sizeof k->t.out, "%s", optarg);
        k->out_given = true;
        break;
    case O_RESUME: k->t.resume = strdup(optarg); break;
    case O_THREADS: rc = int_arg("--threads", optarg, 1, 1024, &k->t.threads); break;
    case O_PROGRESS:
        if (strcmp(optarg, "bar") == 0) k->t.progress = 1;
        else if (strcmp(optarg, "lines") == 0) k->t.progress = 0;
        else return bad("--progress '%s': expected bar or lines", optarg);
        break;
    case O_CKPT: k->p.checkpoint = optarg; break;
    case O_INPUT: k->p.input = optarg; break;
    case O_LOGITS: k->p.logits = optarg; break;
    case O_WARN_GPU: rc = frac_opt("--warn-gpu", optarg, &k->t.guard.warn_gpu); break;
    case O_STOP_GPU: rc = frac_opt("--stop-gpu", optarg, &k->t.guard.stop_gpu); break;
    case O_WARN_RAM: rc = frac_opt("--warn-ram", optarg, &k->t.guard.warn_ram); break;
    case O_STOP_RAM: rc = frac_opt("--stop-ram", optarg, &k->t.guard.stop_ram); break;
    case O_CHECK_TRAIN: {
        int v = 0;
        rc = int_arg("--check-train", optarg, 1, 1000000, &v);
        k->t.guard.check_train = (unsigned)v;
        break;
    }
    case O_CHECK_EVAL: {
        int v = 0;
        rc = int_arg("--check-eval", optarg, 1, 1000000, &v);
        k->t.guard.check_eval = (unsigned)v;
        break;
    }
    case O_RAM_BUDGET:
        if (mg_parse_size(optarg, &k->t.guard.ram_budget) < 0)
            rc = bad("--ram-budget '%s': expected a size above 0, such as 512M or 8G", optarg);
        break;
    case O_NO_WATCHER: k->t.guard.no_watcher = true; break;
    case O_HELP: usage(stdout); return -1;
    case O_VERSION: printf("unet-train %s\n", MG_VERSION_STRING); return -1;
    default: return bad("unknown option");
    }
    return rc;
}

/* --config FILE: "key = value" lines; '#' and ';' start comments, [sections]
 * are ignored. Keys are the long options with '_' for '-' (case does not
 * matter, so the seed's CFG names such as IMG_SIZE or RESUME work);
 * boolean flags take true/false. Flags given on the command line win: the
 * file is applied first. */
static int load_config(cli *k, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return bad("--config '%s': %s", path, strerror(errno));
    char line[2048];
    int lineno = 0, rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (!*p || *p == '\n' || *p == '#' || *p == ';' || *p == '[') continue;
        char *eq = strchr(p, '=');
        snprintf(where, sizeof where, "--config %s line %d: ", path, lineno);
        if (!eq) {
            rc = bad("expected 'key = value'");
            break;
        }
        char *ke = eq;
        while (ke > p && (ke[-1] == ' ' || ke[-1] == '\t')) ke--;
        *ke = '\0';
        char *v = eq + 1;
        while (*v == ' ' || *v == '\t') v++;
        char *ve = v + strlen(v);
        while (ve > v && (ve[-1] == '\n' || ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        *ve = '\0';
        if (ve > v + 1 && (*v == '"' || *v == '\'') && ve[-1] == *v) {
            ve[-1] = '\0';
            v++;
        }
        char name[64];
        size_t n = 0;
        for (; p[n] && n + 1 < sizeof name; n++)
            name[n] = p[n] == '_' ? '-' : (char)(p[n] >= 'A' && p[n] <= 'Z' ? p[n] + 32 : p[n]);
        name[n] = '\0';
        const struct option *o = NULL;
        for (const struct option *q = longopts; q->name; q++)
            if (strcmp(q->name, name) == 0) o = q;
        if (!o || o->val == O_CONFIG || o->val == O_HELP || o->val == O_VERSION) {
            rc = bad("unknown key '%s' (keys are the long options, e.g. img_size, batch, "
                     "warn_gpu, resume)", p);
            break;
        }
        if (o->has_arg == no_argument) {
            if (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcasecmp(v, "yes") == 0)
                rc = set_opt(k, o->val, NULL);
            else if (!(strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0 ||
                       strcasecmp(v, "no") == 0))
                rc = bad("%s '%s': expected true or false", p, v);
        } else {
            rc = set_opt(k, o->val, v);
        }
    }
    fclose(f);
    where[0] = '\0';
    return rc < 0 ? UT_EXIT_USAGE : rc;
}

int main(int argc, char **argv)
{
    enum { TRAIN, PREDICT, PLAN } job = TRAIN;
    int first = 1;
    if (argc > 1 && argv[1][0] != '-') {
        if (strcmp(argv[1], "train") == 0) job = TRAIN;
        else if (strcmp(argv[1], "predict") == 0) job = PREDICT;
        else if (strcmp(argv[1], "plan") == 0) job = PLAN;
        else return bad("unknown command '%s': expected train, predict or plan", argv[1]);
        first = 2;
    }
    static cli k;
    run_cfg *c = &k.t.run;
    c->model = (unet_cfg){3, 16, 4};
    c->img_size = 128;
    c->batch = 4;
    c->epochs = 20;
    c->lr = 1e-3;
    c->beta1 = 0.9;
    c->beta2 = 0.999;
    c->eps = 1e-8;
    c->val_split = 0.2;
    snprintf(k.t.out, sizeof k.t.out, "runs/unet");
    k.t.progress = -1;

    /* The config file first, so the flags override it. */
    opterr = 0;
    optind = first;
    int opt, rc;
    while ((opt = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        if (opt == O_CONFIG && (rc = load_config(&k, optarg)) != 0) return rc;
        if (opt == ':') return bad("option '%s' needs a value", argv[optind - 1]);
        if (opt == '?') return bad("unknown option '%s'", argv[optind - 1]);
    }
    optind = first;
    while ((opt = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        if (opt == O_CONFIG) continue;
        rc = set_opt(&k, opt, optarg);
        if (rc < 0) return UT_EXIT_OK;
        if (rc) return rc;
    }
    if (optind < argc) return bad("unexpected argument '%s'", argv[optind]);

    if (job == PLAN) return plan_run(&c->model, c->batch, c->img_size);
    if (job == PREDICT) {
        predict_opts *p = &k.p;
        if (!p->checkpoint) return bad("predict: --checkpoint FILE is required");
        if (!p->input) return bad("predict: --input DIR is required");
        if (!k.out_given) return bad("predict: --out DIR is required");
        p->out = k.t.out;
        p->img_size = k.size_given ? c->img_size : 0;
        p->batch = k.batch_given && !k.t.batch_auto ? c->batch : 4;
        p->threads = k.t.threads;
        return predict_run(p);
    }
    if (c->data[0] && c->synthetic)
        return bad("--data and --synthetic exclude each other: give one");
    if (!c->data[0] && !c->synthetic) c->synthetic = 240;
    return train_run(&k.t);
}
