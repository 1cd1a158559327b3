/* SPDX-License-Identifier: MIT */
/*
 * test_unet_plots.c: the pictures unet-train draws. curves.svg: a tiny
 * real run's file is parsed with libxml2 and every point of every series
 * is mapped back through its panel's data-* scales to the number in
 * metrics.csv; a run stopped for memory (a resume under a 1 MiB
 * --ram-budget) carries the stop line at its epoch; a run without a
 * validation set has no val series and says so (and a link at curves.svg
 * is replaced, not followed; a dead run's curves.svg.tmp.PID is removed);
 * each is rendered to PNG
 * by rsvg-convert (librsvg) to prove it draws (skipped, with a message,
 * where rsvg-convert is missing). predict --overlay: one RGB PNG per
 * image at the image's size, red exactly on the outline of predict's own
 * --out mask and the image's own pixels everywhere else; and the folders
 * --overlay may not be (--input, --out, a file) are refused with nothing
 * created.
 *
 * Not here: training's numbers themselves (test_unet_train) and memguard
 * plot (test_plot).
 */
#include "image.h"
#include "mg_unet_run.h"

#include "mg_svg.h"
#include <math.h>

static char root[800], run_dir[900];
static bool run_ok;

#define PX_TOL 0.02 /* the SVG writes coordinates with two decimals */

/* ---- metrics.csv, read by the test itself ------------------------------------------- */

typedef struct csv_rows {
    int n, epoch[64];
    double v[64][4]; /* train_loss, val_loss, val_dice, val_iou */
} csv_rows;

static const char *const KEYS[4] = {"train_loss", "val_loss", "val_dice", "val_iou"};

static void read_csv(const char *dir, csv_rows *r)
{
    char path[1000], line[1024];
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    memset(r, 0, sizeof *r);
    FILE *f = fopen(path, "r");
    if (!f) { MG_FAIL_("%s: %s", path, strerror(errno)); return; }
    while (fgets(line, sizeof line, f) && r->n < 64) {
        double *v = r->v[r->n];
        if (sscanf(line, "%d,%lf,%*f,%*f,%lf,%lf,%lf", &r->epoch[r->n], &v[0], &v[1], &v[2],
                   &v[3]) == 5)
            r->n++;
    }
    fclose(f);
}

/* ---- the SVG ------------------------------------------------------------------------ */








/* Series `key` of panel p must be the polyline of metrics.csv's column. */
static void check_series(const panel *p, const char *key, const csv_rows *r, int col)
{
    xmlNode *g = p->g ? find(p->g->children, "g", "data-key", key) : NULL;
    xmlNode *pl = g ? find(g->children, "polyline", NULL, NULL) : NULL;
    if (!pl) { MG_FAIL_("no polyline for series %s", key); return; }
    xmlChar *pts = xmlGetProp(pl, (const xmlChar *)"points");
    const char *s = (const char *)pts;
    int i = 0, used;
    double a, b;
    while (s && sscanf(s, " %lf,%lf%n", &a, &b, &used) == 2) {
        if (i >= r->n) { MG_FAIL_("%s: more points than rows (%d)", key, r->n); break; }
        double wx = px(p, r->epoch[i]), wy = py(p, r->v[i][col]);
        if (fabs(a - wx) > PX_TOL || fabs(b - wy) > PX_TOL) {
            MG_FAIL_("%s point %d: drawn (%.2f, %.2f), metrics.csv (epoch %d, %.6f) is "
                     "(%.3f, %.3f)", key, i, a, b, r->epoch[i], r->v[i][col], wx, wy);
            break;
        }
        i++;
        s += used;
    }
    CHECK_INT(i, r->n);
    xmlFree(pts);
}




/* rsvg-convert renders svg into a PNG of the SVG's size (760 x 640). */
static void check_renders(const char *svg)
{
    const char *rsvg = MG_RSVG; /* found by CMake; "" or ...-NOTFOUND when missing */
    if (access(rsvg, X_OK) != 0) {
        printf("# rsvg-convert not found (librsvg2-bin: scripts/setup.sh test): render check "
               "skipped\n");
        return;
    }
    char png[1100];
    snprintf(png, sizeof png, "%s.png", svg);
    CHECK_INT(run_argv((const char *const[]){rsvg, "-o", png, svg, NULL}, 30000), 0);
    size_t n = 0;
    unsigned char *p = (unsigned char *)slurp(png, &n);
    CHECK(p && n > 24 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0);
    if (p && n > 24) {
        CHECK_INT(be32(p + 16), 760);
        CHECK_INT(be32(p + 20), 640);
        CHECK(n > 8000); /* drawn, not an empty canvas */
    }
    free(p);
}

/* Every series of dir/curves.svg against dir/metrics.csv; `val`: whether
 * the validation series should be there. Returns the document. */
static xmlDoc *check_curves(const char *dir, bool val)
{
    char svg[1000], text[8192];
    snprintf(svg, sizeof svg, "%s/curves.svg", dir);
    csv_rows r;
    read_csv(dir, &r);
    xmlDoc *doc = load_svg(svg);
    if (!doc) return NULL;
    xmlNode *top = xmlDocGetRootElement(doc);
    panel loss = get_panel(top, "losses"), qual = get_panel(top, "quality");
    check_series(&loss, KEYS[0], &r, 0);
    for (int k = 1; k < 4; k++) {
        const panel *p = k == 1 ? &loss : &qual;
        if (val)
            check_series(p, KEYS[k], &r, k);
        else
            CHECK(!find(top, "g", "data-key", KEYS[k]));
    }
    text_of(xmlDocGetRootElement(doc), text, sizeof text);
    CHECK_CONTAINS(text, "epoch");
    CHECK_CONTAINS(text, "train loss");
    if (val) {
        CHECK_CONTAINS(text, "val loss");
        CHECK_CONTAINS(text, "val Dice");
        CHECK_CONTAINS(text, "val IoU");
    } else {
        CHECK_CONTAINS(text, "no validation set");
    }
    check_renders(svg);
    return doc;
}

/* ---- the runs ----------------------------------------------------------------------- */

#define TINY "--synthetic", "48", "--img-size", "32", "--base", "8", "--depth", "1", "--batch", \
             "8", "--lr", "0.01", "--progress", "lines", "--threads", "2"

static void test_curves_of_a_run(void)
{
    snprintf(run_dir, sizeof run_dir, "%s/run", root);
    UT(60000, TINY, "--epochs", "3", "--val-split", "0.25", "--out", run_dir);
    CHECK_INT(P.status, 0);
    if (P.status) { printf("# stderr:\n%s\n", P.err); return; }
    CHECK_CONTAINS(P.out, "curves.svg");
    csv_rows r;
    read_csv(run_dir, &r);
    CHECK_INT(r.n, 3);
    xmlDoc *doc = check_curves(run_dir, true);
    if (doc) CHECK(!find(xmlDocGetRootElement(doc), "g", "data-kind", "emergency-stop"));
    xmlFreeDoc(doc);
    run_ok = mg_test_failed_checks == 0;
}

/* Two epochs, then a resume to 4 under a 1 MiB budget: the guard stops
 * before epoch 3; curves.svg has the two rows and the stop at epoch 3. */
static void test_curves_of_a_stop(void)
{
    char dir[1000], ck[1100];
    snprintf(dir, sizeof dir, "%s/stop", root);
    snprintf(ck, sizeof ck, "%s/last.pth", dir);
    UT(60000, TINY, "--epochs", "2", "--out", dir);
    CHECK_INT(P.status, 0);
    UT(60000, TINY, "--epochs", "4", "--resume", ck, "--ram-budget", "1M", "--out", dir);
    CHECK_INT(P.status, 75);
    if (P.status != 75) { printf("# stdout:\n%s\n# stderr:\n%s\n", P.out, P.err); return; }
    snprintf(ck, sizeof ck, "%s/emergency_epoch3.pth", dir);
    CHECK(exists(ck));
    xmlDoc *doc = check_curves(dir, true);
    if (!doc) return;
    xmlNode *top = xmlDocGetRootElement(doc);
    const char *ids[2] = {"losses", "quality"};
    for (int i = 0; i < 2; i++) {
        panel p = get_panel(top, ids[i]);
        xmlNode *ev = p.g ? find(p.g->children, "g", "data-kind", "emergency-stop") : NULL;
        if (!ev) { MG_FAIL_("%s: no emergency-stop line", ids[i]); continue; }
        CHECK_NEAR(attr_num(ev, "data-epoch"), 3, 0);
        xmlNode *l = find(ev->children, "line", NULL, NULL);
        CHECK_NEAR(attr_num(l, "x1"), px(&p, 3), PX_TOL);
        CHECK_NEAR(attr_num(l, "x2"), px(&p, 3), PX_TOL);
        CHECK(px(&p, 3) < p.x + p.w); /* inside the frame, not on it */
    }
    char text[8192];
    text_of(xmlDocGetRootElement(doc), text, sizeof text);
    CHECK_CONTAINS(text, "emergency_epoch3.pth");
    xmlFreeDoc(doc);
}

/* Also: a curves.svg that is a symbolic link is replaced, its target
 * untouched; a dead run's curves.svg.tmp.PID is removed at the start; a
 * FIFO at shrinks.csv is left alone and read as no shrinks. */
static void test_curves_without_validation(void)
{
    char dir[1000], svg[1100], target[1100], dead_tmp[1100];
    snprintf(dir, sizeof dir, "%s/noval", root);
    snprintf(svg, sizeof svg, "%s/curves.svg", dir);
    snprintf(target, sizeof target, "%s/not-a-plot", root);
    mkdirs(dir);
    CHECK(spit(target, "keep", 4));
    CHECK(symlink(target, svg) == 0);
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    waitpid(dead, NULL, 0);
    snprintf(dead_tmp, sizeof dead_tmp, "%s/curves.svg.tmp.%ld", dir, (long)dead);
    CHECK(spit(dead_tmp, "x", 1));
    char fifo[1100];
    snprintf(fifo, sizeof fifo, "%s/shrinks.csv", dir);
    CHECK(mkfifo(fifo, 0644) == 0);
    UT(60000, TINY, "--epochs", "2", "--val-split", "0", "--out", dir);
    CHECK_INT(P.status, 0);
    struct stat sb;
    /* The FIFO at shrinks.csv neither hung the run nor was touched. */
    CHECK(lstat(fifo, &sb) == 0 && S_ISFIFO(sb.st_mode));
    CHECK(lstat(svg, &sb) == 0 && S_ISREG(sb.st_mode));
    char *kept = slurp(target, NULL);
    CHECK_STR(kept, "keep");
    free(kept);
    CHECK(!exists(dead_tmp));
    xmlFreeDoc(check_curves(dir, false));
}

/* ---- predict --overlay ----------------------------------------------------------------- */

/* A gray w x h image: a bright disc of radius rad at (cx, cy) on a dim
 * striped ground. */
static void disc_png(const char *path, int w, int h, int cx, int cy, int rad)
{
    uint8_t px[64 * 64];
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            px[y * w + x] = (uint8_t)((x - cx) * (x - cx) + (y - cy) * (y - cy) < rad * rad
                                          ? 220 : 40 + (x * 7 + y * 3) % 30);
    char err[1200];
    if (unet_png_write_gray8(path, px, w, h, err, sizeof err) < 0) MG_FAIL_("%s", err);
}

/* The outline of a 0 / 1 mask: in it, with a 4-neighbour out of it or
 * out of the image. */
static bool outline_at(const float *m, int w, int h, int x, int y)
{
    if (m[y * w + x] < 0.5f) return false;
    if (x == 0 || y == 0 || x == w - 1 || y == h - 1) return true;
    return m[y * w + x - 1] < 0.5f || m[y * w + x + 1] < 0.5f || m[(y - 1) * w + x] < 0.5f ||
           m[(y + 1) * w + x] < 0.5f;
}

/* overlay/<stem>.png against the image and predict's mask of it; returns
 * the outline pixels found. */
static int check_overlay(const char *img_path, const char *mask_path, const char *ov_path)
{
    unet_image im = {0}, mk = {0}, ov = {0};
    char err[1200];
    int outline = 0;
    if (unet_image_load(img_path, &im, err, sizeof err) < 0 ||
        unet_image_load(mask_path, &mk, err, sizeof err) < 0 ||
        unet_image_load(ov_path, &ov, err, sizeof err) < 0) {
        MG_FAIL_("%s", err);
        goto out;
    }
    CHECK_INT(ov.w, im.w);
    CHECK_INT(ov.h, im.h);
    CHECK_INT(ov.c, 3);
    if (ov.w != im.w || ov.h != im.h || ov.c != 3 || mk.w != im.w || mk.h != im.h) goto out;
    int bad = 0;
    for (int y = 0; y < im.h; y++)
        for (int x = 0; x < im.w; x++) {
            const float *o = ov.px + 3 * (y * im.w + x);
            float g = im.px[(y * im.w + x) * im.c];
            bool want = outline_at(mk.px, im.w, im.h, x, y);
            bool red = o[0] == 1.0f && o[1] == 0.0f && o[2] == 0.0f;
            bool image = fabsf(o[0] - g) < 1e-6f && fabsf(o[1] - g) < 1e-6f &&
                         fabsf(o[2] - g) < 1e-6f;
            outline += want;
            if (want ? !red : !image) {
                if (bad++ < 3)
                    MG_FAIL_("%s (%d, %d): outline %d, drawn (%.3f, %.3f, %.3f), image %.3f",
                             ov_path, x, y, want, o[0], o[1], o[2], g);
            }
        }
    CHECK_INT(bad, 0);
out:
    unet_image_free(&im);
    unet_image_free(&mk);
    unet_image_free(&ov);
    return outline;
}

static void test_overlay(void)
{
    if (!run_ok) { MG_FAIL_("needs the run of test_curves_of_a_run"); return; }
    char img[1000], masks[1000], ov[1000], ck[1000];
    snprintf(img, sizeof img, "%s/images", root);
    snprintf(masks, sizeof masks, "%s/masks", root);
    snprintf(ov, sizeof ov, "%s/overlay", root);
    snprintf(ck, sizeof ck, "%s/best.pth", run_dir);
    mkdirs(img);
    const char *stems[3] = {"disc", "wide", "edge"};
    const int geo[3][5] = {{32, 32, 14, 16, 8}, {48, 40, 20, 18, 10}, {40, 24, 37, 21, 9}};
    char p[3][1100];
    for (int i = 0; i < 3; i++) {
        snprintf(p[i], sizeof p[i], "%s/%s.png", img, stems[i]);
        disc_png(p[i], geo[i][0], geo[i][1], geo[i][2], geo[i][3], geo[i][4]);
    }
    UT(30000, "predict", "--checkpoint", ck, "--input", img, "--out", masks, "--overlay", ov,
       "--threads", "2");
    CHECK_INT(P.status, 0);
    if (P.status) { printf("# stderr:\n%s\n", P.err); return; }
    CHECK_CONTAINS(P.out, "outlines in ");
    int outline = 0;
    for (int i = 0; i < 3; i++) {
        char mp[1100], op[1100];
        snprintf(mp, sizeof mp, "%s/%s.png", masks, stems[i]);
        snprintf(op, sizeof op, "%s/%s.png", ov, stems[i]);
        outline += check_overlay(p[i], mp, op);
    }
    printf("# %d outline pixels checked\n", outline);
    CHECK(outline > 0); /* the model found the discs: the check is not empty */
}

/* --overlay as --input, as --out, or a file: refused, nothing created. */
static void test_overlay_refusals(void)
{
    if (!run_ok) { MG_FAIL_("needs the run of test_curves_of_a_run"); return; }
    char img[1000], ck[1000], masks[1000], file[1000];
    snprintf(img, sizeof img, "%s/images", root);
    snprintf(ck, sizeof ck, "%s/best.pth", run_dir);
    snprintf(masks, sizeof masks, "%s/refused-masks", root);
    snprintf(file, sizeof file, "%s/a-file", root);
    CHECK(spit(file, "x", 1));
    static char before[65536], after[65536];
    tree_list(root, before, sizeof before);
    const char *bad[3] = {img, masks, file};
    const char *says[3] = {"is the --input folder", "is the --out folder", "Not a directory"};
    for (int i = 0; i < 3; i++) {
        UT(30000, "predict", "--checkpoint", ck, "--input", img, "--out", masks, "--overlay",
           bad[i]);
        CHECK_INT(P.status, 2);
        CHECK_CONTAINS(P.err, says[i]);
        tree_list(root, after, sizeof after);
        CHECK_STR(after, before);
    }
}

int main(void)
{
    snprintf(root, sizeof root, "%s/unet-plots-XXXXXX", MG_TMPDIR);
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    MG_RUN(test_curves_of_a_run);
    MG_RUN(test_curves_of_a_stop);
    MG_RUN(test_curves_without_validation);
    MG_RUN(test_overlay);
    MG_RUN(test_overlay_refusals);
    xmlCleanupParser();
    if (mg_test_failed_checks == 0) mg_rm_rf(root);
    return mg_test_exit();
}
