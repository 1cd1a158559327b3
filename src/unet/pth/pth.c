/* SPDX-License-Identifier: MIT */
/*
 * pth.c: the calls of pth.h, each a short drive of the format files.
 *
 * Loading: pth_load reads the file's bytes into a new arena and hands them
 * to the same parser as pth_load_mem: zip_read.c's directory, then
 * pickle_read.c on data.pkl. Saving: pickle_write.c counts and then emits
 * the pickle into the scratch, and zip_write.c streams it and every tensor
 * into an mg_atomic temporary, which is committed only when all is written.
 * pth_load opens only a regular file, and without blocking (fileio.c): a
 * FIFO or a folder is refused, not waited on.
 *
 * Not here: any byte of either format (the four files above), the
 * checkpoint's dict layout (ckpt/).
 */
#include "pth.h"

#include "fileio.h"
#include "errf.h"
#include "memguard.h"
#include "pickle_read.h"
#include "pickle_write.h"
#include "zip_read.h"
#include "zip_write.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void pth_err(char *err, size_t n, const char *fmt, ...)
    UNET_PRINTF(3, 4);

static void pth_err(char *err, size_t n, const char *fmt, ...)
{
    if (!err || n == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
}

/* ---- load ------------------------------------------------------------- */

/* The preamble of both loads: clears the outputs and err; MG_EINVAL when
 * an argument is NULL. */
static int load_args(const void *src, pv_arena **out_arena, pv **out_root, char *err,
                     size_t err_len)
{
    if (err && err_len) err[0] = '\0';
    if (out_arena) *out_arena = NULL;
    if (out_root) *out_root = NULL;
    if (src && out_arena && out_root) return 0;
    pth_err(err, err_len, "pth_load: NULL argument");
    return MG_EINVAL;
}

/* The one parser: buf (len bytes) into a tree in arena a. On success the
 * outputs take a; on failure a is freed. */
static int load_parse(pv_arena *a, const void *buf, size_t len, pv_arena **out_arena,
                      pv **out_root, char *err, size_t err_len)
{
    zr_ctx z = {.buf = buf, .len = len, .arena = a, .err = err, .err_len = err_len};
    pv *root = NULL;
    int rc = zr_open(&z);
    zr_entry *pkl = rc ? NULL : zr_find(&z, "data.pkl", 8);
    if (rc == 0 && !pkl)
        rc = zr_fail(&z, MG_EPARSE, "zip: no '%.*sdata.pkl' record", (int)z.plen, z.prefix);
    if (rc == 0) rc = zr_check_crc(&z, pkl);
    if (rc == 0) rc = pk_read(&z, pkl, &root);
    if (rc) {
        pv_arena_free(a);
        return rc;
    }
    *out_arena = a;
    *out_root = root;
    return 0;
}

int pth_load_mem(const void *buf, size_t len, pv_arena **out_arena, pv **out_root,
                 char *err, size_t err_len)
{
    int rc = load_args(buf, out_arena, out_root, err, err_len);
    if (rc) return rc;
    pv_arena *a = pv_arena_new();
    if (!a) {
        pth_err(err, err_len, "pth_load: out of memory");
        return MG_ENOMEM;
    }
    return load_parse(a, buf, len, out_arena, out_root, err, err_len);
}

/* The bytes of the regular file path, in a new arena (*a, *buf, *len). */
static int read_file(const char *path, pv_arena **a, unsigned char **buf, size_t *len,
                     char *err, size_t err_len)
{
    /* Non-blocking and regular only: a FIFO or a folder is refused, not
     * waited on or read as empty. */
    int rc;
    FILE *f = unet_fopen_regular(path, &rc, err, err_len);
    if (!f) return rc;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || sb.st_size < 0 || (uint64_t)sb.st_size > SIZE_MAX / 2) {
        fclose(f);
        pth_err(err, err_len, "%s: too large to read", path);
        return MG_EIO;
    }
    *len = (size_t)sb.st_size;
    *a = pv_arena_new();
    *buf = *a ? pv_arena_alloc(*a, *len ? *len : 1) : NULL;
    if (!*buf) {
        fclose(f);
        pv_arena_free(*a);
        pth_err(err, err_len, "%s: out of memory for %zu bytes", path, *len);
        return MG_ENOMEM;
    }
    size_t got = fread(*buf, 1, *len, f);
    int rerr = ferror(f);
    fclose(f);
    if (got != *len || rerr) {
        pv_arena_free(*a);
        pth_err(err, err_len, "%s: short read (%zu of %zu bytes)", path, got, *len);
        return MG_EIO;
    }
    return 0;
}

int pth_load(const char *path, pv_arena **out_arena, pv **out_root, char *err, size_t err_len)
{
    int rc = load_args(path, out_arena, out_root, err, err_len);
    if (rc) return rc;
    pv_arena *a = NULL;
    unsigned char *buf = NULL;
    size_t len = 0;
    if ((rc = read_file(path, &a, &buf, &len, err, err_len))) return rc;
    rc = load_parse(a, buf, len, out_arena, out_root, err, err_len);
    if (rc && err && err_len > 1) {
        /* prefix the message with the file name: "<path>: data.pkl: ..." */
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s", err);
        snprintf(err, err_len, "%s: %s", path, tmp);
    }
    return rc;
}

/* ---- save ------------------------------------------------------------- */

static int archive_ok(const char *a)
{
    size_t n = strlen(a);
    return n > 0 && n <= 128 && !strchr(a, '/') && !strchr(a, '\\');
}

static const char *archive_of(const pth_save_opts *o)
{
    return o && o->archive ? o->archive : "archive";
}

static size_t align8(size_t n)
{
    return (n + 7) / 8 * 8;
}

/* The scratch for a tree whose pickle pkw_emit measured (info). */
static size_t scratch_for(const pkw_info *info)
{
    if (info->ntensors > (SIZE_MAX - align8(info->len)) / ZW_ENTRY - ZW_FIXED_ENTRIES - 1)
        return 0;
    return align8(info->len) + (size_t)(info->ntensors + ZW_FIXED_ENTRIES) * ZW_ENTRY;
}

size_t pth_save_scratch(const pv *root, const pth_save_opts *opts)
{
    pkw_info info;
    if (pkw_emit(root, NULL, 0, &info) || (opts && opts->archive && !archive_ok(opts->archive)))
        return 0;
    return scratch_for(&info);
}

/* Zip64 records when asked, or when the file could reach 4 GiB (or 65535
 * entries); 512 bytes per entry bound its headers. */
static int needs_zip64(const pkw_info *info, const pth_save_opts *opts)
{
    uint64_t entries = info->ntensors + ZW_FIXED_ENTRIES;
    return (opts && opts->force_zip64) || info->payload >= 0xF0000000ull ||
           info->len >= 0xF0000000ull || entries >= 0xFFFF ||
           entries * 512 >= 0xF0000000ull - info->payload;
}

static int add_tensor(void *ctx, const pv_tensor *t, uint64_t nbytes)
{
    return zw_add(ctx, t->data, nbytes);
}

/* Every entry in torch's order, then the central directory. */
static int save_entries(zw_zip *z, const pv *root, const void *pickle, size_t pklen)
{
    int rc = zw_add(z, pickle, pklen);
    if (rc == 0) rc = zw_add(z, "little", 6);
    if (rc == 0) rc = pkw_each_tensor(root, add_tensor, z);
    if (rc == 0) rc = zw_add(z, "3\n", 2);
    return rc ? rc : zw_central(z);
}

/* The arguments, the tree and the caller's scratch; *own when pth_save
 * allocated the scratch itself. */
static int save_prepare(const char *path, const pv *root, void **scratch, size_t scratch_len,
                        const pth_save_opts *opts, pkw_info *info, void **own, char *err,
                        size_t err_len)
{
    if (!path || !root) {
        pth_err(err, err_len, "pth_save: NULL path or tree");
        return MG_EINVAL;
    }
    const char *archive = archive_of(opts);
    if (!archive_ok(archive)) {
        pth_err(err, err_len, "pth_save: archive name \"%s\" must be 1-128 chars without '/'",
                archive);
        return MG_EINVAL;
    }
    size_t need = pkw_emit(root, NULL, 0, info) ? 0 : scratch_for(info);
    if (need == 0) {
        pth_err(err, err_len, "pth_save: invalid tree (internal node, bad dict key, bad tensor "
                "shape/dtype, NULL tensor data or size overflow)");
        return MG_EINVAL;
    }
    if (info->ntensors + ZW_FIXED_ENTRIES > 0xFFFFFFFFull) {
        pth_err(err, err_len, "pth_save: %llu tensors is too many",
                (unsigned long long)info->ntensors);
        return MG_ERANGE;
    }
    if (!*scratch) {
        *scratch = *own = malloc(need);
        if (*own) return 0;
        pth_err(err, err_len, "pth_save: out of memory for %zu bytes of pickle", need);
        return MG_ENOMEM;
    }
    if (scratch_len >= need && ((uintptr_t)*scratch & 7u) == 0) return 0;
    pth_err(err, err_len, "pth_save: scratch buffer of %zu bytes, need %zu (8-byte aligned)",
            scratch_len, need);
    return MG_ENOBUFS;
}

int pth_save(const char *path, const pv *root, void *scratch, size_t scratch_len,
             const pth_save_opts *opts, char *err, size_t err_len)
{
    if (err && err_len) err[0] = '\0';
    pkw_info info;
    void *own = NULL;
    int rc = save_prepare(path, root, &scratch, scratch_len, opts, &info, &own, err, err_len);
    if (rc) return rc;
    unsigned char *pickle = scratch;
    pkw_emit(root, pickle, info.len, &info);
    zw_zip z; /* ~9 KiB of stack: two paths and one header buffer */
    rc = zw_open(&z, path, archive_of(opts), info.ntensors, needs_zip64(&info, opts),
                 opts ? opts->fail_after : 0, pickle + align8(info.len));
    if (rc < 0) {
        pth_err(err, err_len, "pth_save: cannot create the temporary for %s: %s", path,
                mg_strerror(rc));
        free(own);
        return rc;
    }
    rc = save_entries(&z, root, pickle, info.len);
    if (rc < 0) {
        mg_atomic_abort(&z.at);
        pth_err(err, err_len, "pth_save: writing %s failed after %llu bytes: %s", path,
                (unsigned long long)z.pos, mg_strerror(rc));
    } else {
        rc = mg_atomic_commit(&z.at);
        if (rc < 0)
            pth_err(err, err_len, "pth_save: committing %s failed: %s", path, mg_strerror(rc));
    }
    free(own);
    return rc;
}
