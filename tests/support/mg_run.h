/* SPDX-License-Identifier: MIT */
/*
 * mg_run.h: what the `memguard run` tests (test_run.c, test_supervise.c)
 * share besides mg_proc.h's runner: a scratch folder, the helper trainers
 * still alive, the checkpoint a helper wrote, and the JSON-lines --log
 * parsed with cJSON.
 */
#ifndef MG_RUN_TEST_H
#define MG_RUN_TEST_H

#include "mg_proc.h"

#include <cjson/cJSON.h>
#include <dirent.h>

#define MB (1024.0 * 1024.0)

static char tmpdir[512];

static void path_in_tmp(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tmpdir, name);
}

/* Whether process `pid` carries this test's tag in its environment: ctest
 * runs test_run and test_supervise side by side, and each must count only
 * the helpers it started. */
static inline bool has_our_tag(const char *pid)
{
    char p[300], env[65536], tag[64];
    snprintf(p, sizeof p, "/proc/%s/environ", pid);
    snprintf(tag, sizeof tag, "MG_TEST_TAG=%ld", (long)getpid());
    FILE *f = fopen(p, "r");
    if (!f) return false;
    size_t k = fread(env, 1, sizeof env - 1, f);
    fclose(f);
    env[k] = '\0';
    for (size_t i = 0; i < k; i += strlen(env + i) + 1)
        if (strcmp(env + i, tag) == 0) return true;
    return false;
}

/* Tags this test's environment, so every helper it starts inherits it. */
static inline void tag_our_helpers(void)
{
    char v[32];
    snprintf(v, sizeof v, "%ld", (long)getpid());
    setenv("MG_TEST_TAG", v, 1);
}

/* Helper processes of this test still alive (its own children included). */
static int helpers_alive(void)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d))) {
        char p[300], cmd[4096];
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        snprintf(p, sizeof p, "/proc/%s/cmdline", e->d_name);
        FILE *f = fopen(p, "r");
        if (!f) continue;
        size_t k = fread(cmd, 1, sizeof cmd - 1, f);
        fclose(f);
        cmd[k] = '\0';
        char state = mg_proc_state((pid_t)atol(e->d_name)); /* 0: gone meanwhile */
        if (strcmp(cmd, MG_HELPER) == 0 && state != 'Z' && has_our_tag(e->d_name)) n++;
    }
    if (d) closedir(d);
    return n;
}

static void no_helper_left(void)
{
    for (int i = 0; i < 100 && helpers_alive(); i++) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    CHECK_INT(helpers_alive(), 0);
}

/* The events of a --log file, in order. */
typedef struct events {
    cJSON *items[4096];
    int n;
} events;

static events EV;

static void load_log(const char *path)
{
    for (int i = 0; i < EV.n; i++) cJSON_Delete(EV.items[i]);
    EV.n = 0;
    FILE *f = fopen(path, "r");
    if (!f) { MG_FAIL_("no log file %s", path); return; }
    static char line[65536];
    while (fgets(line, sizeof line, f) && EV.n < 4096) {
        cJSON *j = cJSON_Parse(line);
        if (!j) { MG_FAIL_("log line is not JSON: %.200s", line); continue; }
        EV.items[EV.n++] = j;
    }
    fclose(f);
}

static const char *ev_name(int i)
{
    const cJSON *e = cJSON_GetObjectItem(EV.items[i], "event");
    return cJSON_IsString(e) ? e->valuestring : "";
}

/* Index of the first event named `name` at or after `from`, or -1. */
static int ev_find(const char *name, int from)
{
    for (int i = from; i < EV.n; i++)
        if (strcmp(ev_name(i), name) == 0) return i;
    return -1;
}

static double ev_num(int i, const char *a, const char *b, const char *c)
{
    const cJSON *o = cJSON_GetObjectItem(EV.items[i], a);
    if (b) o = cJSON_GetObjectItem(o, b);
    if (c) o = cJSON_GetObjectItem(o, c);
    return cJSON_IsNumber(o) ? o->valuedouble : -1;
}

/* allocated_mb=N of a helper's checkpoint; -1 when missing, -2 when
 * unreadable. */
static long ckpt_mb(const char *path)
{
    FILE *f = fopen(path, "r");
    long mb = -1;
    if (f) {
        if (fscanf(f, "allocated_mb=%ld", &mb) != 1) mb = -2;
        fclose(f);
    }
    return mb;
}

#endif /* MG_RUN_TEST_H */
