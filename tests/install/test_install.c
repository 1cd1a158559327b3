/* SPDX-License-Identifier: MIT */
/*
 * test_install.c: memguard as users install it, with the real tools.
 *
 * A prefix install: `cmake --install` of this build into a temporary
 * prefix; a small C program compiled against it through `pkg-config
 * --cflags --libs memguard` and run (it must load the prefix's library);
 * the Python binding imported from PREFIX/<MG_PYTHON_DIR> by Debian's
 * python3 with no MEMGUARD_LIBRARY; the prefix moved elsewhere, and
 * pkg-config following it (memguard.pc is relative to itself); and the
 * default prefix's package folder on python3's own path.
 *
 * pip: a fresh `python3 -m venv --system-site-packages`, then `pip install
 * --no-build-isolation --no-index` of ./python and of the checkout's root
 * (each builds libmemguard with CMake into the package); from a folder
 * outside the checkout and with no environment variable, the seed's
 * check_memory_safety() and a Guard that stops (exit 75, a checkpoint)
 * and a run that resumes from it. The checkout must be left as it was.
 *
 * Every command runs in its own process group with a deadline; everything
 * is written under one mkdtemp folder (TMPDIR too, so pip's temporaries),
 * removed at the end. Skipped under the sanitizers: an ASan-built library
 * cannot be loaded into python or linked without the ASan runtime.
 */
#define _GNU_SOURCE
#include "mg_files.h"
#include "mg_test.h"
#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char tmp[512], prefix[600], out[200000];

/* ---- running commands ------------------------------------------------------------ */

/* Runs argv (looked up in PATH) in dir with "K=V" environment overrides
 * ("K" unsets K), in its own process group, output (stdout and stderr)
 * into out[] (support/proc.h). Kills the group after deadline_s. Returns
 * the exit status, or -1. */
static int run(const char *dir, const char *const *env, const char *const *argv, int deadline_s)
{
    mg_proc_opts o = {.argv = argv, .search_path = 1, .env = env, .cwd = dir, .new_pgrp = 1,
                      .timeout_ms = deadline_s * 1000, .poll_ms = 50, .out = out,
                      .out_cap = sizeof out, .merge_err = 1};
    mg_proc_res r;
    mg_proc_run(&o, &r);
    if (r.timed_out) MG_FAIL_("%s ran past %d s: killed it", argv[0], deadline_s);
    return r.status;
}

/* A command's exit status against the one wanted; its output when not. */
#define EXPECT(got, want, what)                                                  \
    do {                                                                         \
        int got_ = (got);                                                        \
        if (got_ != (want)) MG_FAIL_("%s: exit %d, want %d; output:\n%s", what,  \
                                     got_, (want), out);                         \
    } while (0)

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) { MG_FAIL_("cannot write %s: %s", path, strerror(errno)); return; }
    fputs(text, f);
    fclose(f);
}


/* ---- a prefix install ------------------------------------------------------------- */

static const char prog_c[] =
    "#include <memguard.h>\n"
    "#include <stdio.h>\n"
    "#include <string.h>\n"
    "int main(void)\n"
    "{\n"
    "    mg_config cfg = {0};\n"
    "    int err;\n"
    "    mg_ctx *ctx = mg_create(&cfg, &err);\n"
    "    if (!ctx) { printf(\"mg_create: %s\\n\", mg_strerror(err)); return 1; }\n"
    "    bool safe;\n"
    "    char warning[512];\n"
    "    int rc = mg_check_memory_safety(ctx, 0.90, 0.85, &safe, warning, sizeof warning);\n"
    "    printf(\"rc=%d version=%s\\n\", rc, MG_VERSION_STRING);\n"
    "    FILE *m = fopen(\"/proc/self/maps\", \"r\");\n"
    "    char line[4096];\n"
    "    while (m && fgets(line, sizeof line, m))\n"
    "        if (strstr(line, \"libmemguard\")) { printf(\"loaded %s\", strchr(line, '/')); break; }\n"
    "    if (m) fclose(m);\n"
    "    mg_destroy(ctx);\n"
    "    return rc < 0;\n"
    "}\n";

static const char import_py[] =
    "import os, memguard\n"
    "assert 'MEMGUARD_LIBRARY' not in os.environ\n"
    "print('package', memguard.__file__)\n"
    "print('library', memguard.find_library())\n"
    "print('check', memguard.check_memory_safety(threshold_gpu=0.90, threshold_ram=0.85))\n";

static void test_prefix_install(void)
{
    char env_pc[800], env_py[900], file[900], lib[800], want[900];
    snprintf(prefix, sizeof prefix, "%s/prefix", tmp);
    const char *install[] = {"cmake", "--install", MG_BUILD_DIR, "--prefix", prefix, NULL};
    EXPECT(run(tmp, NULL, install, 120), 0, "cmake --install");
    snprintf(env_pc, sizeof env_pc, "PKG_CONFIG_PATH=%s/%s/pkgconfig", prefix, MG_LIBDIR);
    snprintf(file, sizeof file, "%s/prog.c", tmp);
    write_text(file, prog_c);
    /* A user's build line: the flags from pkg-config, and an rpath to the
     * prefix's lib folder so the program runs without LD_LIBRARY_PATH. */
    const char *env_c[] = {env_pc, "PKG_CONFIG_LIBDIR", NULL};
    const char *cc[] = {"/bin/sh", "-c", MG_CC " -o prog prog.c "
                        "$(pkg-config --cflags --libs memguard) "
                        "-Wl,-rpath,$(pkg-config --variable=libdir memguard)", NULL};
    EXPECT(run(tmp, env_c, cc, 120), 0, "cc against pkg-config");
    const char *no_ld[] = {"LD_LIBRARY_PATH", NULL}, *prog[] = {"./prog", NULL};
    EXPECT(run(tmp, no_ld, prog, 30), 0, "the program");
    CHECK_CONTAINS(out, "rc=0 version=");
    snprintf(lib, sizeof lib, "loaded %s/%s/libmemguard.so", prefix, MG_LIBDIR);
    CHECK_CONTAINS(out, lib);
    /* The Python binding, from PREFIX/<MG_PYTHON_DIR> alone. */
    CHECK(strlen(MG_PYTHON_DIR) > 0);
    snprintf(env_py, sizeof env_py, "PYTHONPATH=%s/%s", prefix, MG_PYTHON_DIR);
    snprintf(file, sizeof file, "%s/import_check.py", tmp);
    write_text(file, import_py);
    const char *env_imp[] = {env_py, "MEMGUARD_LIBRARY", NULL};
    const char *imp[] = {MG_PYTHON, "import_check.py", NULL};
    EXPECT(run(tmp, env_imp, imp, 60), 0, "import from the prefix");
    snprintf(want, sizeof want, "package %s/%s/memguard/__init__.py", prefix, MG_PYTHON_DIR);
    CHECK_CONTAINS(out, want);
    CHECK_CONTAINS(out, lib + strlen("loaded "));
    CHECK_CONTAINS(out, "check (");
    /* Moved elsewhere, memguard.pc still points into the tree it is in. */
    char moved[700];
    snprintf(moved, sizeof moved, "%s/moved", tmp);
    CHECK(rename(prefix, moved) == 0);
    snprintf(env_pc, sizeof env_pc, "PKG_CONFIG_PATH=%s/%s/pkgconfig", moved, MG_LIBDIR);
    const char *pc[] = {"/bin/sh", "-c", "test -f \"$(pkg-config --variable=includedir "
                        "memguard)/memguard.h\" && pkg-config --cflags --libs memguard", NULL};
    EXPECT(run(tmp, env_c, pc, 30), 0, "pkg-config after the move");
    CHECK_CONTAINS(out, moved);
    CHECK(strstr(out, "/usr/local") == NULL);
    /* The default prefix's package folder is on python3's own path. */
    char code[600];
    snprintf(code, sizeof code, "import sys; print('/usr/local/%s' in sys.path)", MG_PYTHON_DIR);
    const char *path[] = {MG_PYTHON, "-c", code, NULL};
    EXPECT(run(tmp, NULL, path, 30), 0, "python3's path");
    CHECK_CONTAINS(out, "True");
}

/* ---- pip ----------------------------------------------------------------------------- */

static const char guard_py[] =
    "import os, sys\n"
    "import memguard\n"
    "assert 'MEMGUARD_LIBRARY' not in os.environ\n"
    "print('library', memguard.find_library())\n"
    "print('check', memguard.check_memory_safety(threshold_gpu=0.90, threshold_ram=0.85))\n"
    "if sys.argv[1] == 'stop':\n"
    "    # 1 MiB is far below this interpreter's own memory: the first check is critical.\n"
    "    g = memguard.Guard(ram_budget='1M', banner=False)\n"
    "    g.epoch_start(3)\n"
    "    assert g.should_stop()\n"
    "    g.emergency_save(lambda p: open(p, 'w').write('epoch=3\\n'), directory='.')\n"
    "else:\n"
    "    with open(sys.argv[2]) as f:\n"
    "        assert f.read() == 'epoch=3\\n'\n"
    "    g = memguard.Guard(warn_ram=0.99, stop_ram=0.995, banner=False)\n"
    "    for epoch in (4, 5):\n"
    "        g.epoch_start(epoch)\n"
    "        for i in range(20):\n"
    "            g.train_batch(i)\n"
    "            assert not g.should_stop(), g.stop_reason\n"
    "    print('resumed after epoch 3, finished epoch 5')\n";

/* What a pip build might leave in the checkout: nothing may be there. */
static void checkout_untouched(void)
{
    static const char *const left[] = {"python/build", "python/memguard.egg-info",
                                       "memguard.egg-info", "python/memguard/libmemguard.so.0"};
    for (size_t i = 0; i < sizeof left / sizeof *left; i++) {
        char p[900];
        snprintf(p, sizeof p, "%s/%s", MG_SOURCE_DIR, left[i]);
        if (access(p, F_OK) == 0) MG_FAIL_("pip left %s in the checkout", p);
    }
}

/* pip installs `src` into a fresh venv; the Guard stops and resumes. */
static void pip_case(const char *name, const char *src)
{
    char venv[700], pip[800], python[800], work[800], script[900], env_tmp[800], lib[900];
    snprintf(venv, sizeof venv, "%s/venv-%s", tmp, name);
    snprintf(pip, sizeof pip, "%s/bin/pip", venv);
    snprintf(python, sizeof python, "%s/bin/python", venv);
    snprintf(work, sizeof work, "%s/work-%s", tmp, name);
    snprintf(env_tmp, sizeof env_tmp, "TMPDIR=%s", tmp);
    mkdir(work, 0755);
    const char *env[] = {env_tmp, "MEMGUARD_LIBRARY", "PYTHONPATH", "PIP_CONFIG_FILE=/dev/null",
                         "PIP_DISABLE_PIP_VERSION_CHECK=1", NULL};
    const char *mkvenv[] = {MG_PYTHON, "-m", "venv", "--system-site-packages", venv, NULL};
    EXPECT(run(tmp, env, mkvenv, 120), 0, "python3 -m venv");
    double t0 = mg_mono_ms();
    const char *install[] = {pip, "install", "--no-build-isolation", "--no-index",
                             "--no-cache-dir", src, NULL};
    EXPECT(run(work, env, install, 240), 0, "pip install");
    printf("# pip install %s: %.0f s\n", src, (mg_mono_ms() - t0) / 1000);
    CHECK_CONTAINS(out, "Successfully installed memguard");
    checkout_untouched();
    snprintf(script, sizeof script, "%s/guard_check.py", work);
    write_text(script, guard_py);
    const char *stop[] = {python, "guard_check.py", "stop", NULL};
    EXPECT(run(work, env, stop, 60), 75, "the Guard's stop");
    snprintf(lib, sizeof lib, "library %s/lib/", venv);
    CHECK_CONTAINS(out, lib);
    CHECK_CONTAINS(out, "/memguard/libmemguard.so.0");
    CHECK_CONTAINS(out, "check (");
    CHECK_CONTAINS(out, "Emergency save complete");
    const char *resume[] = {python, "guard_check.py", "resume", "emergency_epoch3.pth", NULL};
    EXPECT(run(work, env, resume, 60), 0, "the resume");
    CHECK_CONTAINS(out, "resumed after epoch 3, finished epoch 5");
}

static void test_pip_install_python_folder(void)
{
    char src[700];
    snprintf(src, sizeof src, "%s/python", MG_SOURCE_DIR);
    pip_case("python", src);
}

static void test_pip_install_checkout_root(void)
{
    pip_case("root", MG_SOURCE_DIR);
}

int main(void)
{
#ifdef MG_SANITIZE
    printf("ok 1 - test_install # SKIP libmemguard is built with sanitizers\n1..1\n");
    return 0;
#endif
    if (access(MG_PYTHON, X_OK) != 0) {
        printf("ok 1 - test_install # SKIP %s not found\n1..1\n", MG_PYTHON);
        return 0;
    }
    snprintf(tmp, sizeof tmp, "%s/install-XXXXXX", MG_TMPDIR);
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    MG_RUN(test_prefix_install);
    MG_RUN(test_pip_install_python_folder);
    MG_RUN(test_pip_install_checkout_root);
    mg_rm_rf(tmp);
    return mg_test_exit();
}
