/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ini.c: libFuzzer harness for unet-train's INI reader (--config FILE:
 * src/unet/app/config_file.c's lines, comments, [sections] and quotes, and
 * load_config and set_opt in src/unet/app/main.c, every option's value).
 *
 * load_config is static in main.c and has no API of its own, so this file
 * includes main.c whole, with its main() renamed, and calls load_config on
 * a file holding the fuzzed bytes, once for each job (train, predict,
 * plan: each accepts its own keys), after main()'s defaults. Afterwards it reads the paths the way
 * unet-train then does (the predict paths, the resume path, the data and
 * output folders), so one left unterminated, or pointing into the reader's
 * own line buffer, shows up as an ASan report (with
 * ASAN_OPTIONS=detect_stack_use_after_return=1, as scripts/fuzz.sh sets).
 * The reader's messages to stderr go to /dev/null while it runs.
 */
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wshadow" /* its set_opt's optarg: getopt's */
#define main unet_train_main
#include "../src/unet/app/main.c"
#undef main
#pragma clang diagnostic pop

#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int devnull = -1, saved_err = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (devnull < 0) abort();
    return 0;
}

static void quiet(bool on)
{
    fflush(stderr);
    if (on) {
        saved_err = dup(2);
        dup2(devnull, 2);
    } else {
        dup2(saved_err, 2);
        close(saved_err);
    }
}

/* What main() and predict_run read after the file was applied: every
 * path the reader stored must be a terminated string. */
static size_t use_strings(const cli *c)
{
    return strlen(c->t.run.data) + strlen(c->t.out) + strlen(c->t.resume) +
           strlen(c->p.checkpoint) + strlen(c->p.input) + strlen(c->p.logits);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[4200];
    if (!path[0]) snprintf(path, sizeof path, "%s/config.ini", fz_tmpdir());
    if (fz_write_file(path, data, size) != 0) abort();
    static const unsigned jobs[] = {J_TRAIN, J_PREDICT, J_PLAN};
    static cli k;
    for (size_t j = 0; j < sizeof jobs / sizeof jobs[0]; j++) {
        memset(&k, 0, sizeof k);
        k.job = jobs[j];
        defaults(&k);
        quiet(true);
        int rc = load_config(&k, path);
        quiet(false);
        FZ_CHECK(rc == 0 || rc == MG_EXIT_USAGE, "load_config returned %d", rc);
        volatile size_t n = use_strings(&k);
        (void)n;
    }
    unlink(path);
    return 0;
}
