/* SPDX-License-Identifier: MIT */
/*
 * fuzz_pickle.c: libFuzzer harness for the pickle machine of the .pth
 * reader (src/unet/pth/pickle_read.c, pk_run and its opcode handlers,
 * the global allowlist, persistent storage ids, tensor rebuilds) and for
 * what the trainer makes of the tree (src/unet/ckpt/ckpt_read.c:
 * ckpt_open, ckpt_apply).
 *
 * The fuzzed bytes are the pickle, not the zip: the harness wraps them in
 * a valid zip ("archive/data.pkl", "archive/version", "archive/data/<i>")
 * with correct CRC-32s, so every mutation reaches the pickle machine.
 * Input layout:
 *     byte 0            K, the number of storages (0-255)
 *     K x 4 bytes       little-endian size in bytes of archive/data/0..K-1
 *                       (zero-filled; at most 1 MiB each, 8 MiB in all)
 *     the rest          archive/data.pkl
 * Seeds are the pickles of real checkpoints (unet-train's and torch.save's,
 * fuzz/tools/make_seeds.py) with their storage sizes.
 *
 * A tree that loads is walked and saved back (fuzz_pv.h); then the zip is
 * written to a file and given to ckpt_open, and when that finds a small
 * UNet (base 8 or 16, depth 1 or 2) to ckpt_apply on a model of that shape.
 * FUZZ_VERBOSE=1 in the environment prints why an input was refused.
 */
#include "fuzz_pv.h"

#include "backend_cpu.h"
#include "ckpt.h"
#include "model.h"

#include <zlib.h>

#define MAX_STORAGE (1u << 20)
#define MAX_TOTAL (8u << 20)
#define PREFIX "archive/"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct zent {
    char name[32];
    const unsigned char *data;
    size_t len;
    uint32_t crc, off;
} zent;

static void put16(unsigned char **p, unsigned v)
{
    (*p)[0] = (unsigned char)v;
    (*p)[1] = (unsigned char)(v >> 8);
    *p += 2;
}

static void put32(unsigned char **p, uint32_t v)
{
    for (int i = 0; i < 4; i++) (*p)[i] = (unsigned char)(v >> (8 * i));
    *p += 4;
}

static void put_bytes(unsigned char **p, const void *src, size_t n)
{
    if (n) memcpy(*p, src, n);
    *p += n;
}

/* A stored zip of the entries, as the C writer lays it out (without its
 * 64-byte alignment). The caller frees the result. */
static unsigned char *zip_build(zent *e, size_t n, size_t *out_len)
{
    size_t len = 22;
    for (size_t i = 0; i < n; i++) len += 30 + 46 + 2 * strlen(e[i].name) + e[i].len;
    unsigned char *buf = malloc(len), *p = buf;
    if (!buf) abort();
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(e[i].name);
        e[i].crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), e[i].data, (uInt)e[i].len);
        e[i].off = (uint32_t)(p - buf);
        put32(&p, 0x04034B50);
        put16(&p, 20); put16(&p, 0); put16(&p, 0); put16(&p, 0); put16(&p, 0);
        put32(&p, e[i].crc);
        put32(&p, (uint32_t)e[i].len); put32(&p, (uint32_t)e[i].len);
        put16(&p, (unsigned)nl); put16(&p, 0);
        put_bytes(&p, e[i].name, nl);
        put_bytes(&p, e[i].data, e[i].len);
    }
    uint32_t cd_off = (uint32_t)(p - buf);
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(e[i].name);
        put32(&p, 0x02014B50);
        put16(&p, 20); put16(&p, 20); put16(&p, 0); put16(&p, 0); put16(&p, 0); put16(&p, 0);
        put32(&p, e[i].crc);
        put32(&p, (uint32_t)e[i].len); put32(&p, (uint32_t)e[i].len);
        put16(&p, (unsigned)nl); put16(&p, 0); put16(&p, 0); put16(&p, 0); put16(&p, 0);
        put32(&p, 0);
        put32(&p, e[i].off);
        put_bytes(&p, e[i].name, nl);
    }
    uint32_t cd_len = (uint32_t)(p - buf) - cd_off;
    put32(&p, 0x06054B50);
    put16(&p, 0); put16(&p, 0); put16(&p, (unsigned)n); put16(&p, (unsigned)n);
    put32(&p, cd_len); put32(&p, cd_off);
    put16(&p, 0);
    *out_len = (size_t)(p - buf);
    return buf;
}

/* ---- the trainer's view: ckpt_open / ckpt_apply ------------------------ */

static unet *models[2][2][2]; /* [in_ch 1/3][base 8/16][depth 1/2], made on need */

static unet *model_for(const unet_cfg *c)
{
    if ((c->in_ch != 1 && c->in_ch != 3) || (c->base != 8 && c->base != 16) ||
        (c->depth != 1 && c->depth != 2))
        return NULL;
    unet **slot = &models[c->in_ch == 3][c->base == 16][c->depth == 2];
    char msg[256];
    if (!*slot) *slot = unet_create(c, 1, 16, 16, 1, unet_backend_cpu(), msg, sizeof msg);
    FZ_CHECK(*slot, "unet_create %d/%d/%d: %s", c->in_ch, c->base, c->depth, msg);
    return *slot;
}

static void trainer_view(const unsigned char *zip, size_t len)
{
    static char path[4200];
    if (!path[0]) snprintf(path, sizeof path, "%s/ckpt.pth", fz_tmpdir());
    if (fz_write_file(path, zip, len) != 0) abort();
    ckpt_file *f = NULL;
    ckpt_info info;
    char err[512];
    if (ckpt_open(path, &f, &info, err, sizeof err) == 0) {
        unet *m = model_for(&info.model);
        int rc = m ? ckpt_apply(f, m, err, sizeof err) : 0;
        if (getenv("FUZZ_VERBOSE"))
            fprintf(stderr, "ckpt_open: UNet %d/%d/%d, ckpt_apply: %s\n", info.model.in_ch,
                    info.model.base, info.model.depth, !m ? "no model of that shape" :
                    rc ? err : "ok");
    } else {
        FZ_CHECK(err[0], "ckpt_open failed without its message");
        if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "ckpt_open: %s\n", err);
    }
    ckpt_close(f);
    unlink(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setenv("OMP_NUM_THREADS", "1", 0); /* the models' kernels: one thread */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned char *zeros;
    if (!zeros && !(zeros = calloc(1, MAX_STORAGE))) abort();
    static char rt_path[4200];
    if (!rt_path[0]) snprintf(rt_path, sizeof rt_path, "%s/roundtrip.pth", fz_tmpdir());

    if (size < 1) return 0;
    size_t k = data[0], hdr = 1 + 4 * k, total = 0;
    if (size < hdr) return 0;
    zent e[2 + 256];
    size_t n = 0;
    e[n++] = (zent){.name = PREFIX "data.pkl", .data = data + hdr, .len = size - hdr};
    e[n++] = (zent){.name = PREFIX "version", .data = (const unsigned char *)"3\n", .len = 2};
    for (size_t i = 0; i < k; i++) {
        const uint8_t *q = data + 1 + 4 * i;
        uint32_t sz = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
                      (uint32_t)q[3] << 24;
        if (sz > MAX_STORAGE || (total += sz) > MAX_TOTAL) return 0;
        e[n] = (zent){.data = zeros, .len = sz};
        snprintf(e[n].name, sizeof e[n].name, PREFIX "data/%zu", i);
        n++;
    }
    size_t len;
    unsigned char *zip = zip_build(e, n, &len);
    pv_arena *a = NULL;
    pv *root = NULL;
    char err[PTH_ERR_LEN];
    int rc = pth_load_mem(zip, len, &a, &root, err, sizeof err);
    if (rc != 0) {
        FZ_CHECK(rc < 0 && !a && !root && err[0], "failure %d without its message", rc);
        if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "pth_load_mem: %s\n", err);
    } else {
        FZ_CHECK(!pv__internal(root), "a reader-internal node in the result");
        (void)fz_pv_walk(root, 0);
        fz_pv_roundtrip(root, rt_path);
        pv_arena_free(a);
        trainer_view(zip, len);
    }
    free(zip);
    return 0;
}
