/* SPDX-License-Identifier: MIT */
/*
 * test_plot.c: `memguard plot` and `memguard run --plot` as a user runs
 * them. A real `memguard run` of a helper that really allocates, under a
 * budget and two fake GPUs, writes the log and the plot; every SVG is parsed
 * with libxml2 (a real XML parser, strict: one error fails the test), each
 * drawn point is mapped back through the panel's scales and compared with
 * the number in the log (parsed with cJSON), and the SVG is rendered to PNG
 * by rsvg-convert (librsvg) to prove it draws. Bad logs and bad output paths
 * must give one line, exit 2 and leave every file as it was. Everything is
 * written in one mkdtemp folder, removed at the end.
 */
#define _GNU_SOURCE
#include "mg_run.h"

#include "mg_svg.h"
#include <sys/types.h>

#define PX_TOL 0.011 /* the SVG prints coordinates with two decimals */

/* ---- files -------------------------------------------------------------------- */


/* The names in tmpdir, sorted, each followed by a space. */
static void listing(char *buf, size_t len)
{
    struct dirent **names;
    int n = scandir(tmpdir, &names, NULL, alphasort);
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        const char *d = names[i]->d_name;
        if (strcmp(d, ".") != 0 && strcmp(d, "..") != 0 && o < len)
            o += (size_t)snprintf(buf + o, len - o, "%s ", d);
        free(names[i]);
    }
    if (n >= 0) free(names);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, k;
    char *p = malloc(cap + 1);
    while (p && (k = fread(p + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            char *q = realloc(p, 2 * cap + 1);
            if (!q) { free(p); p = NULL; break; }
            p = q;
            cap *= 2;
        }
    }
    fclose(f);
    if (p) p[n] = '\0';
    if (len) *len = n;
    return p;
}

static void tmp_name(char *buf, size_t len, const char *name) { path_in_tmp(buf, len, name); }

/* ---- another program (rsvg-convert) ------------------------------------------- */

/* Runs argv (support/proc.h) with stdout and stderr as one stream, shown
 * when there is any; kills it after timeout_ms. Returns its exit status
 * (128 + N for signal N), or -1 past the timeout. */
static int run_prog(const char *const *argv, int timeout_ms)
{
    static char msg[65536];
    mg_proc_opts o = {.argv = argv, .timeout_ms = timeout_ms, .out = msg,
                      .out_cap = sizeof msg, .merge_err = 1};
    mg_proc_res r;
    mg_proc_run(&o, &r);
    if (r.timed_out) {
        MG_FAIL_("%s ran past %d ms", argv[0], timeout_ms);
        return -1;
    }
    if (*msg) printf("# %s: %s", argv[0], msg);
    return r.status;
}

/* Renders svg with librsvg and checks the PNG: its signature, and the
 * size the SVG asked for. */
static void check_renders(const char *svg, double width, double height)
{
    char png[700];
    snprintf(png, sizeof png, "%s.png", svg);
    if (access(MG_RSVG, X_OK) != 0) {
        MG_FAIL_("rsvg-convert not found at %s (librsvg2-bin: scripts/setup.sh test)", MG_RSVG);
        return;
    }
    CHECK_INT(run_prog((const char *const[]){MG_RSVG, "-o", png, svg, NULL}, 30000), 0);
    size_t n = 0;
    unsigned char *p = (unsigned char *)slurp(png, &n);
    CHECK(p && n > 24 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0 && memcmp(p + 12, "IHDR", 4) == 0);
    if (p && n > 24) {
        CHECK_NEAR(be32(p + 16), width, 1);
        CHECK_NEAR(be32(p + 20), height, 1);
        CHECK(n > 8000); /* drawn, not an empty canvas */
    }
    free(p);
    unlink(png);
}

/* ---- the SVG ------------------------------------------------------------------- */










typedef struct pts {
    double x[8192], y[8192];
    int n;
} pts;

static pts DRAWN;

/* The points of series `key` in panel p, in document order (polylines'
 * points and lone dots; the area polygons are not points). */
static void drawn(const panel *p, const char *key)
{
    DRAWN.n = 0;
    xmlNode *g = find(p->g->children, "g", "data-key", key);
    if (!g) { MG_FAIL_("no series %s", key); return; }
    for (xmlNode *c = g->children; c; c = c->next) {
        if (is_elem(c, "circle") && DRAWN.n < 8192) {
            DRAWN.x[DRAWN.n] = attr_num(c, "cx");
            DRAWN.y[DRAWN.n++] = attr_num(c, "cy");
        } else if (is_elem(c, "polyline")) {
            xmlChar *v = xmlGetProp(c, (const xmlChar *)"points");
            const char *s = (const char *)v;
            double a, b;
            int used;
            while (s && sscanf(s, " %lf,%lf%n", &a, &b, &used) == 2 && DRAWN.n < 8192) {
                DRAWN.x[DRAWN.n] = a;
                DRAWN.y[DRAWN.n++] = b;
                s += used;
            }
            xmlFree(v);
        }
    }
}


/* Every point of series key must be the log's (t, value) pair in order. */
static void check_series(const panel *p, const char *key, const double *t, const double *v, int n)
{
    drawn(p, key);
    CHECK_INT(DRAWN.n, n);
    for (int i = 0; i < n && i < DRAWN.n; i++) {
        if (fabs(DRAWN.x[i] - px(p, t[i])) > PX_TOL || fabs(DRAWN.y[i] - py(p, v[i])) > PX_TOL) {
            MG_FAIL_("%s point %d: drawn (%.2f, %.2f), log (%.4f s, %.6g) is (%.3f, %.3f)", key, i,
                     DRAWN.x[i], DRAWN.y[i], t[i], v[i], px(p, t[i]), py(p, v[i]));
            break;
        }
    }
}

/* ---- the log, read by the test itself ---------------------------------------------- */

typedef struct logged {
    int n;
    double t[4096], budget[4096], tree[4096], gpu0[4096], gpu1[4096];
    double warn_ram, stop_ram, warn_gpu, stop_gpu, hard_ram, t_end;
    char kinds[64][16];
    double kind_t[64];
    int nev;
    char request_reason[300];
} logged;

static logged LG;

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

static void read_logged(const char *path)
{
    memset(&LG, 0, sizeof LG);
    load_log(path);
    for (int i = 0; i < EV.n; i++) {
        const cJSON *e = EV.items[i], *s = get(e, "sample");
        double t = get(e, "t_ms")->valuedouble / 1000;
        LG.t_end = t;
        const char *kind = ev_name(i);
        if (strcmp(kind, "start") && strcmp(kind, "sample") && LG.nev < 64) {
            snprintf(LG.kinds[LG.nev], sizeof LG.kinds[0], "%s", kind);
            LG.kind_t[LG.nev++] = t;
        }
        if (strcmp(kind, "request") == 0)
            snprintf(LG.request_reason, sizeof LG.request_reason, "%s",
                     get(e, "reason")->valuestring);
        if (!s || LG.n == 4096) continue;
        const cJSON *l;
        cJSON_ArrayForEach(l, get(get(s, "ram"), "limits"))
            if (strcmp(get(l, "source")->valuestring, "budget") == 0)
                LG.budget[LG.n] = get(l, "used_bytes")->valuedouble /
                                  get(l, "total_bytes")->valuedouble;
        LG.tree[LG.n] = get(get(s, "process_tree"), "used_bytes")->valuedouble;
        LG.gpu0[LG.n] = get(cJSON_GetArrayItem(get(s, "gpus"), 0), "used_frac")->valuedouble;
        LG.gpu1[LG.n] = get(cJSON_GetArrayItem(get(s, "gpus"), 1), "used_frac")->valuedouble;
        const cJSON *th = get(s, "thresholds");
        LG.warn_ram = get(th, "warn_ram_frac")->valuedouble;
        LG.stop_ram = get(th, "stop_ram_frac")->valuedouble;
        LG.warn_gpu = get(th, "warn_gpu_frac")->valuedouble;
        LG.stop_gpu = get(th, "stop_gpu_frac")->valuedouble;
        LG.t[LG.n++] = t;
    }
    int start = ev_find("start", 0);
    LG.hard_ram = start < 0 ? NAN : ev_num(start, "hard_ram_frac", NULL, NULL);
}

static void check_threshold(const panel *p, const char *kind, double v)
{
    xmlNode *g = find(p->g->children, "g", "data-kind", kind);
    xmlNode *line = g ? find(g->children, "line", NULL, NULL) : NULL;
    if (!line) { MG_FAIL_("no %s threshold", kind); return; }
    CHECK_NEAR(attr_num(g, "data-v"), v, 1e-9);
    CHECK_NEAR(attr_num(line, "y1"), py(p, v), PX_TOL);
}

/* The event lines of panel p: the log's events (not samples, not the
 * start) in order, each at its time. */
static void check_events(const panel *p)
{
    xmlNode *ev[64];
    int n = find_all(p->g, "g", "class", "event", ev, 64);
    CHECK_INT(n, LG.nev);
    for (int i = 0; i < n && i < LG.nev; i++) {
        CHECK(attr_is(ev[i], "data-kind", LG.kinds[i]));
        xmlNode *line = find(ev[i]->children, "line", NULL, NULL);
        CHECK_NEAR(attr_num(line, "x1"), px(p, LG.kind_t[i]), PX_TOL);
    }
}

/* ---- tests ---------------------------------------------------------------------------- */

static char env_nvml[700];

/* A real run: a helper allocating 8 MiB every 40 ms under a 120 MiB budget,
 * two fake GPUs (40 % and 91 % used: the second is past the warn line). */
static void test_plot_of_a_real_run(void)
{
    char log[700], svg[700], again[700], ck[700];
    tmp_name(log, sizeof log, "real.jsonl");
    tmp_name(svg, sizeof svg, "real-run.svg");
    tmp_name(again, sizeof again, "real.svg");
    tmp_name(ck, sizeof ck, "real.ckpt");
    const char *env[] = {env_nvml, "FAKE_NVML_COUNT=2",
                         "FAKE_NVML_GPU0=Fake A100;GPU-aaaa;85899345920;51539607552;0",
                         "FAKE_NVML_GPU1=Fake RTX 3060;GPU-bbbb;12884901888;1159641170;0", NULL};
    int st = run_cli(env, (const char *const[]){"run", "--ram-budget", "120M",
                                                "--report-interval", "30", "--log", log,
                                                "--plot", svg, "--", MG_HELPER, "alloc", "8",
                                                "40", ck, NULL}, 30000);
    CHECK_INT(st, 75);
    CHECK_CONTAINS(R.err, "plot: wrote");
    CHECK(ckpt_mb(ck) > 0 && ckpt_mb(ck) < 120);
    read_logged(log);
    CHECK(LG.n >= 5);
    CHECK(LG.nev >= 3); /* warn (the GPU), request, ack or exit */
    xmlDoc *doc = load_svg(svg);
    if (!doc) return;
    xmlNode *root = xmlDocGetRootElement(doc);
    panel ram = get_panel(root, "ram"), tree = get_panel(root, "tree"), gpu = get_panel(root, "gpu");
    CHECK_NEAR(ram.t0, 0, 0);
    CHECK_NEAR(ram.t1, LG.t_end, 1e-6);
    CHECK_NEAR(tree.t1, LG.t_end, 1e-6);
    check_series(&ram, "ram:budget", LG.t, LG.budget, LG.n);
    check_series(&tree, "tree:used", LG.t, LG.tree, LG.n);
    check_series(&gpu, "gpu:0", LG.t, LG.gpu0, LG.n);
    check_series(&gpu, "gpu:1", LG.t, LG.gpu1, LG.n);
    CHECK(find(ram.g->children, "g", "data-key", "ram:meminfo") != NULL);
    check_threshold(&ram, "warn", LG.warn_ram);
    check_threshold(&ram, "stop", LG.stop_ram);
    check_threshold(&ram, "hard", LG.hard_ram);
    check_threshold(&gpu, "warn", LG.warn_gpu);
    check_threshold(&gpu, "stop", LG.stop_gpu);
    check_events(&ram);
    check_events(&gpu);
    /* The table names the request's reason; the header how it ended. */
    char all[65536];
    text_of(root, all, sizeof all);
    CHECK_CONTAINS(all, LG.request_reason);
    CHECK_CONTAINS(all, "memguard exit 75: checkpoint saved, stopped for memory");
    CHECK_CONTAINS(all, "GPU 1 Fake RTX 3060");
    check_renders(svg, attr_num(root, "width"), attr_num(root, "height"));
    xmlFreeDoc(doc);
    /* memguard plot draws the same file from the same log. */
    CHECK_INT(RUN(NULL, "plot", log), 0);
    size_t a = 0, b = 0;
    char *x = slurp(svg, &a), *y = slurp(again, &b);
    CHECK(x && y && a == b && memcmp(x, y, a) == 0);
    free(x);
    free(y);
    no_helper_left();
}

/* A log as `memguard run` writes it, made by hand: one line. */
static void put_line(FILE *f, const char *event, double t_ms, double used, double total,
                     const char *extra)
{
    fprintf(f, "{\"event\":\"%s\",\"t_ms\":%.0f%s%s,\"sample\":{\"ram\":{\"limits\":["
               "{\"source\":\"meminfo\",\"total_bytes\":8589934592,\"used_bytes\":2147483648},"
               "{\"source\":\"budget\",\"total_bytes\":%.0f,\"used_bytes\":%.0f}]},"
               "\"process_tree\":{\"used_bytes\":%.0f,\"rss_bytes\":%.0f,\"pss_bytes\":null},"
               "\"gpu_state\":\"no_library\",\"gpus\":[],\"thresholds\":{\"warn_gpu_frac\":0.9,"
               "\"stop_gpu_frac\":0.92,\"warn_ram_frac\":0.85,\"stop_ram_frac\":0.88,"
               "\"ram_budget_bytes\":%.0f}}}\n",
            event, t_ms, extra ? "," : "", extra ? extra : "", total, used, used, used, total);
}

static void start_line(FILE *f, const char *prog)
{
    fprintf(f, "{\"event\":\"start\",\"t_ms\":0,\"pid\":42,\"command\":[\"/usr/bin/%s\",\"--x\"],"
               "\"dry_run\":false,\"hard_ram_frac\":0.97,\"hard_gpu_frac\":0.98}\n", prog);
}

static void exit_line(FILE *f, double t_ms, int status)
{
    fprintf(f, "{\"event\":\"exit\",\"t_ms\":%.0f,\"pid\":42,\"code\":%d,\"signal\":0,"
               "\"phase\":\"running\",\"exit_status\":%d}\n", t_ms, status, status);
}

/* A long run, 20000 samples: a series with more points than two per pixel
 * is reduced per pixel column, and the one spike survives. */
static void test_long_log_keeps_its_peak(void)
{
    char log[700], svg[700];
    tmp_name(log, sizeof log, "long.jsonl");
    tmp_name(svg, sizeof svg, "long.svg");
    FILE *f = fopen(log, "w");
    start_line(f, "long");
    double total = 1073741824;
    for (int i = 0; i < 20000; i++)
        put_line(f, "sample", i * 50.0, (i == 12345 ? 0.95 : 0.3 + 0.1 * sin(i / 500.0)) * total,
                 total, NULL);
    exit_line(f, 20000 * 50.0, 0);
    fclose(f);
    double t0 = mg_mono_ms();
    CHECK_INT(RUN(NULL, "plot", log, "-o", svg), 0);
    printf("# 20000 samples plotted in %.0f ms\n", mg_mono_ms() - t0);
    xmlDoc *doc = load_svg(svg);
    if (!doc) return;
    xmlNode *root = xmlDocGetRootElement(doc);
    panel ram = get_panel(root, "ram");
    drawn(&ram, "ram:budget");
    CHECK(DRAWN.n > 900 && DRAWN.n <= 2 * 902);
    double top = 1e9, bottom = -1e9;
    for (int i = 0; i < DRAWN.n; i++) {
        if (DRAWN.y[i] < top) top = DRAWN.y[i];
        if (DRAWN.y[i] > bottom) bottom = DRAWN.y[i];
    }
    CHECK_NEAR(top, py(&ram, 0.95), PX_TOL);
    CHECK_NEAR(bottom, py(&ram, 0.2), 0.5); /* the sine's lowest, 0.3 - 0.1 */
    size_t n = 0;
    free(slurp(svg, &n));
    CHECK(n < 400000);
    check_renders(svg, attr_num(root, "width"), attr_num(root, "height"));
    xmlFreeDoc(doc);
}

/* Reasons with control characters, bytes that are not UTF-8, U+FFFF and
 * XML's own characters: the SVG stays well-formed and shows them. */
static void test_strange_text_stays_xml(void)
{
    char log[700], svg[700];
    tmp_name(log, sizeof log, "text.jsonl");
    tmp_name(svg, sizeof svg, "text.svg");
    FILE *f = fopen(log, "w");
    start_line(f, "a&b<c>");
    put_line(f, "warn", 100, 1e6, 1e7, "\"reason\":\"bell\\u0007 <b>&amp; \xff\xfe \\uffff end\"");
    exit_line(f, 200, 0);
    fclose(f);
    CHECK_INT(RUN(NULL, "plot", log, "-o", svg), 0);
    xmlDoc *doc = load_svg(svg);
    if (!doc) return;
    char all[65536];
    text_of(xmlDocGetRootElement(doc), all, sizeof all);
    CHECK_CONTAINS(all, "memguard run: a&b<c> --x");
    CHECK_CONTAINS(all, "bell  <b>&amp; \xEF\xBF\xBD\xEF\xBF\xBD \xEF\xBF\xBD end");
    xmlFreeDoc(doc);
}

/* Two runs appended to one log: the last is drawn unless --run says. */
static void test_runs_of_one_log(void)
{
    char log[700], svg[700], all[65536];
    tmp_name(log, sizeof log, "two.jsonl");
    tmp_name(svg, sizeof svg, "two.svg");
    FILE *f = fopen(log, "w");
    start_line(f, "first");
    put_line(f, "sample", 10, 1e6, 1e7, NULL);
    exit_line(f, 20, 0);
    start_line(f, "second");
    put_line(f, "sample", 10, 2e6, 1e7, NULL);
    exit_line(f, 30, 3);
    fclose(f);
    CHECK_INT(RUN(NULL, "plot", log, "-o", svg), 0);
    CHECK_CONTAINS(R.err, "holds 2 runs: drawing the last");
    xmlDoc *doc = load_svg(svg);
    if (doc) {
        text_of(xmlDocGetRootElement(doc), all, sizeof all);
        CHECK_CONTAINS(all, "memguard run: second --x");
        CHECK_CONTAINS(all, "memguard exit 3");
        xmlFreeDoc(doc);
    }
    CHECK_INT(RUN(NULL, "plot", "--run", "1", log, "-o", svg), 0);
    CHECK(strstr(R.err, "holds") == NULL);
    doc = load_svg(svg);
    if (doc) {
        text_of(xmlDocGetRootElement(doc), all, sizeof all);
        CHECK_CONTAINS(all, "memguard run: first --x");
        xmlFreeDoc(doc);
    }
    CHECK_INT(RUN(NULL, "plot", "--run", "3", log, "-o", svg), 2);
    CHECK_CONTAINS(R.err, "holds 2 runs, not 3");
    CHECK_INT(mg_count_lines(R.err), 1);
}

/* Valid lines around bad ones, and a last line cut short: drawn, and the
 * skipped lines counted on one line. */
static void test_bad_lines_are_skipped(void)
{
    char log[700], svg[700];
    tmp_name(log, sizeof log, "holes.jsonl");
    tmp_name(svg, sizeof svg, "holes.svg");
    FILE *f = fopen(log, "w");
    start_line(f, "holes");
    put_line(f, "sample", 100, 1e6, 1e7, NULL);
    fprintf(f, "this is not json\n");
    put_line(f, "sample", 200, 3e6, 1e7, NULL);
    fprintf(f, "{\"event\":\"sample\",\"t_ms\":300,\"sample\":{\"ram\":{\"limits\":[{\"sou");
    fclose(f);
    CHECK_INT(RUN(NULL, "plot", log, "-o", svg), 0);
    CHECK_CONTAINS(R.err, "2 of 5 lines skipped, not valid log lines (the first, line 3: not JSON");
    xmlDoc *doc = load_svg(svg);
    if (!doc) return;
    panel ram = get_panel(xmlDocGetRootElement(doc), "ram");
    check_series(&ram, "ram:budget", (const double[]){0.1, 0.2}, (const double[]){0.1, 0.3}, 2);
    xmlFreeDoc(doc);
}

/* Each bad log: exit 2, one line naming it, no SVG, the log unchanged. */
static void test_bad_logs(void)
{
    static const struct {
        const char *name, *content, *says;
    } cases[] = {
        {"empty.jsonl", "", "empty"},
        {"prose.jsonl", "hello\nworld\n", "not JSON"},
        {"cut.jsonl", "{\"event\":\"start\",\"t_ms\":0,\"comm", "not JSON, or cut short"},
        {"nan.jsonl", "{\"event\":\"sample\",\"t_ms\":NaN}\n", "not JSON"},
        {"inf.jsonl", "{\"event\":\"sample\",\"t_ms\":1e999}\n", "'t_ms' is not a number"},
        {"huge.jsonl",
         "{\"event\":\"sample\",\"t_ms\":1,\"sample\":{\"process_tree\":{\"used_bytes\":1e300}}}\n",
         "'used_bytes' is not a number"},
        {"negative.jsonl", "{\"event\":\"warn\",\"t_ms\":-5}\n", "'t_ms' is not a number"},
        {"other.jsonl", "{\"level\":\"info\",\"msg\":\"hi\"}\n", "no \"event\""},
        {"nul.jsonl", "{\"event\":\"start\",\"t_ms\":0}\0\n", "NUL byte"},
        {"trailing.jsonl", "{\"event\":\"start\",\"t_ms\":0} {}\n", "not JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char log[700], before[4096], after[4096];
        tmp_name(log, sizeof log, cases[i].name);
        FILE *f = fopen(log, "wb");
        size_t len = strlen(cases[i].content);
        if (strcmp(cases[i].name, "nul.jsonl") == 0) len += 2;
        fwrite(cases[i].content, 1, len, f);
        fclose(f);
        listing(before, sizeof before);
        CHECK_INT(RUN(NULL, "plot", log), 2);
        CHECK_INT(mg_count_lines(R.err), 1);
        CHECK_CONTAINS(R.err, log);
        CHECK_CONTAINS(R.err, cases[i].says);
        listing(after, sizeof after);
        CHECK_STR(after, before);
        size_t n = 0;
        char *p = slurp(log, &n);
        CHECK(p && n == len && memcmp(p, cases[i].content, len) == 0);
        free(p);
        unlink(log);
    }
    /* What is not a file: a folder, a FIFO (never waited on), a device,
     * nothing; and a line longer than 1 MiB. */
    char fifo[700], sub[700], big[700];
    tmp_name(fifo, sizeof fifo, "fifo.jsonl");
    tmp_name(sub, sizeof sub, "folder.jsonl");
    tmp_name(big, sizeof big, "big.jsonl");
    mkfifo(fifo, 0600);
    mkdir(sub, 0755);
    FILE *f = fopen(big, "w");
    fputs("{\"event\":\"warn\",\"t_ms\":1,\"reason\":\"", f);
    for (int i = 0; i < (1 << 20) / 8 + 8; i++) fputs("xxxxxxxx", f);
    fputs("\"}\n", f);
    fclose(f);
    const char *paths[] = {fifo, sub, "/dev/null", "/nonexistent/run.jsonl", big};
    const char *says[] = {"not a regular file", "a folder", "not a regular file",
                          "No such file", "longer than 1048576 bytes"};
    for (size_t i = 0; i < 5; i++) {
        CHECK_INT(RUN(NULL, "plot", paths[i], "-o", "-"), 2);
        CHECK_INT(mg_count_lines(R.err), 1);
        CHECK_CONTAINS(R.err, paths[i]);
        CHECK_CONTAINS(R.err, says[i]);
        CHECK_STR(R.out, "");
        CHECK(R.wall_ms < 5000);
    }
    unlink(fifo);
    rmdir(sub);
    unlink(big);
    /* Options. */
    CHECK_INT(RUN(NULL, "plot"), 2);
    CHECK_CONTAINS(R.err, "missing LOG");
    CHECK_INT(RUN(NULL, "plot", "a", "b"), 2);
    CHECK_INT(RUN(NULL, "plot", "--run", "0", "a"), 2);
    CHECK_INT(RUN(NULL, "plot", "-o", "x", "-o", "y", "a"), 2);
    CHECK_INT(RUN(NULL, "plot", "--bogus", "a"), 2);
    CHECK_INT(mg_count_lines(R.err), 1);
}

/* -o: never through a symlink, never onto a folder, a FIFO or the log;
 * an old file is replaced whole, nothing else is left. */
static void test_output_is_safe(void)
{
    char log[700], link[700], target[700], out[700], sub[700], fifo[700];
    tmp_name(log, sizeof log, "o.jsonl");
    tmp_name(link, sizeof link, "link.svg");
    tmp_name(target, sizeof target, "target.txt");
    tmp_name(out, sizeof out, "o.svg");
    tmp_name(sub, sizeof sub, "sub");
    tmp_name(fifo, sizeof fifo, "fifo.svg");
    FILE *f = fopen(log, "w");
    start_line(f, "o");
    put_line(f, "sample", 100, 1e6, 1e7, NULL);
    exit_line(f, 200, 0);
    fclose(f);
    size_t log_len = 0;
    char *log_text = slurp(log, &log_len);
    write_file(target, "precious\n");
    CHECK(symlink(target, link) == 0);
    mkdir(sub, 0755);
    mkfifo(fifo, 0600);
    char missing[800];
    snprintf(missing, sizeof missing, "%s/nope/x.svg", tmpdir);
    const char *bad[] = {link, sub, fifo, log, missing};
    const char *says[] = {"symbolic link", "a folder", "not a regular file", "the log itself",
                          "no such folder"};
    for (size_t i = 0; i < 5; i++) {
        CHECK_INT(RUN(NULL, "plot", log, "-o", bad[i]), 2);
        CHECK_INT(mg_count_lines(R.err), 1);
        CHECK_CONTAINS(R.err, says[i]);
    }
    char *t = slurp(target, NULL);
    CHECK_STR(t, "precious\n");
    free(t);
    struct stat st;
    CHECK(lstat(link, &st) == 0 && S_ISLNK(st.st_mode));
    size_t n = 0;
    char *again = slurp(log, &n);
    CHECK(again && n == log_len && memcmp(again, log_text, n) == 0);
    free(again);
    free(log_text);
    /* The default name, then a second plot over it: a new file (rename). */
    CHECK_INT(RUN(NULL, "plot", log), 0);
    struct stat a, b;
    CHECK(stat(out, &a) == 0);
    CHECK_INT(RUN(NULL, "plot", log), 0);
    CHECK(stat(out, &b) == 0 && a.st_ino != b.st_ino);
    char names[4096];
    listing(names, sizeof names);
    CHECK(strstr(names, ".tmp.") == NULL);
    /* -o -: the SVG on stdout. */
    CHECK_INT(RUN(NULL, "plot", log, "-o", "-"), 0);
    xmlDoc *doc = xmlReadMemory(R.out, (int)strlen(R.out), "stdout.svg", NULL, XML_PARSE_NONET);
    CHECK(doc != NULL);
    xmlFreeDoc(doc);
    unlink(link);
    unlink(target);
    unlink(fifo);
    rmdir(sub);
    unlink(out);
    unlink(log);
}

/* run --plot without --log: the plot, and nothing else, in the folder; the
 * output is checked before the command starts. */
static void test_run_plot_without_log(void)
{
    char svg[700], marker[700], link[700], before[4096], after[4096];
    tmp_name(svg, sizeof svg, "nolog.svg");
    tmp_name(marker, sizeof marker, "started");
    tmp_name(link, sizeof link, "nolog-link.svg");
    listing(before, sizeof before);
    CHECK_INT(RUN(NULL, "run", "--no-gpu", "--plot", svg, "--", MG_HELPER, "exit", "3"), 3);
    CHECK_CONTAINS(R.err, "plot: wrote");
    listing(after, sizeof after);
    char *mine = strstr(after, "nolog.svg ");
    CHECK(mine != NULL); /* and nothing else is new: no temporary log left */
    if (mine) memmove(mine, mine + strlen("nolog.svg "), strlen(mine + strlen("nolog.svg ")) + 1);
    CHECK_STR(after, before);
    xmlDoc *doc = load_svg(svg);
    if (doc) {
        char all[65536];
        text_of(xmlDocGetRootElement(doc), all, sizeof all);
        CHECK_CONTAINS(all, "the command exited with 3; memguard exit 3");
        xmlFreeDoc(doc);
    }
    unlink(svg);
    CHECK(symlink("/nonexistent", link) == 0);
    char touch[800];
    snprintf(touch, sizeof touch, "touch '%s'", marker);
    CHECK_INT(RUN(NULL, "run", "--no-gpu", "--plot", link, "--", "/bin/sh", "-c", touch), 2);
    CHECK_CONTAINS(R.err, "--plot");
    CHECK_INT(RUN(NULL, "run", "--no-gpu", "--plot", "-", "--", "/bin/sh", "-c", touch), 2);
    CHECK_INT(RUN(NULL, "run", "--no-gpu", "--log", svg, "--plot", svg, "--", "/bin/sh", "-c",
                  touch), 2);
    CHECK_INT(mg_count_lines(R.err), 1);
    CHECK(access(marker, F_OK) != 0);
    unlink(link);
    no_helper_left();
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "%s/plot-XXXXXX", MG_TMPDIR);
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    tag_our_helpers();
    snprintf(env_nvml, sizeof env_nvml, "MEMGUARD_NVML_LIBRARY=%s", MG_FAKE_NVML);
    MG_RUN(test_plot_of_a_real_run);
    MG_RUN(test_long_log_keeps_its_peak);
    MG_RUN(test_strange_text_stays_xml);
    MG_RUN(test_runs_of_one_log);
    MG_RUN(test_bad_lines_are_skipped);
    MG_RUN(test_bad_logs);
    MG_RUN(test_output_is_safe);
    MG_RUN(test_run_plot_without_log);
    for (int i = 0; i < EV.n; i++) cJSON_Delete(EV.items[i]);
    xmlCleanupParser();
    mg_rm_rf(tmpdir);
    return mg_test_exit();
}
