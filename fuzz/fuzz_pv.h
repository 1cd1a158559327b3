/* SPDX-License-Identifier: MIT */
/*
 * fuzz_pv.h: the checks the two .pth harnesses (fuzz_pth_zip.c,
 * fuzz_pickle.c) run on a tree that pth_load_mem accepted:
 *   - fz_pv_walk: every node is a finished kind (no reader-internal global
 *     or storage), containers hold what they claim, nesting stays within
 *     PV_MAX_DEPTH, and every byte of every tensor is readable (ASan turns
 *     a tensor that overruns its storage into a report);
 *   - fz_pv_roundtrip: when pth_save accepts the tree, the file it writes
 *     loads back into an equal tree (pv_equal): writer and reader agree.
 * Header-only (static inline functions).
 */
#ifndef MG_FUZZ_PV_H
#define MG_FUZZ_PV_H

#include "fuzz_util.h"
#include "memguard.h"
#include "pth.h"

static inline unsigned fz_pv_walk(const pv *v, int depth)
{
    FZ_CHECK(v != NULL, "NULL node at depth %d", depth);
    FZ_CHECK(depth <= PV_MAX_DEPTH + 1, "nesting %d", depth);
    unsigned h = 0;
    switch (v->kind) {
    case PV_NONE: case PV_BOOL: case PV_INT: case PV_FLOAT:
        break;
    case PV_STR:
        FZ_CHECK(v->u.str.s && strlen(v->u.str.s) <= v->u.str.len, "string length");
        break;
    case PV_TENSOR: {
        const pv_tensor *t = &v->u.t;
        FZ_CHECK(t->ndim >= 0 && t->ndim <= PV_MAX_DIM, "rank %d", t->ndim);
        FZ_CHECK((unsigned)t->dtype < PV_NDTYPE, "dtype %d", (int)t->dtype);
        int64_t n = pv_numel(t);
        FZ_CHECK(n >= 0, "numel %lld", (long long)n);
        size_t bytes = (size_t)n * pv_dtype_size(t->dtype);
        const unsigned char *p = t->data;
        FZ_CHECK(p || bytes == 0, "tensor of %zu bytes without data", bytes);
        for (size_t i = 0; i < bytes; i++) h += p[i];
        break;
    }
    case PV_LIST: case PV_TUPLE:
        for (size_t i = 0; i < v->u.c.n; i++) h += fz_pv_walk(v->u.c.items[i], depth + 1);
        break;
    case PV_DICT: case PV_ODICT:
        for (size_t i = 0; i < v->u.c.n; i++) {
            h += fz_pv_walk(v->u.c.items[i], depth + 1);
            h += fz_pv_walk(v->u.c.vals[i], depth + 1);
        }
        break;
    default:
        FZ_CHECK(0, "node of internal kind %d in a finished tree", (int)v->kind);
    }
    return h;
}

/* Saves root to path and loads it back; the two trees must be equal. */
static inline void fz_pv_roundtrip(const pv *root, const char *path)
{
    char err[PTH_ERR_LEN];
    if (pth_save(path, root, NULL, 0, NULL, err, sizeof err) != 0) return;
    pv_arena *a = NULL;
    pv *back = NULL;
    int rc = pth_load(path, &a, &back, err, sizeof err);
    FZ_CHECK(rc == 0, "pth_load of what pth_save wrote: %s", err);
    FZ_CHECK(pv_equal(root, back), "the tree read back differs from the one saved");
    pv_arena_free(a);
    unlink(path);
}

#endif /* MG_FUZZ_PV_H */
