/* SPDX-License-Identifier: MIT */
/*
 * pyval.c: the Python value tree of pyval.h: an arena, constructors,
 * container edits that keep the tree acyclic and shallow, look-ups and
 * equality. It does no I/O and knows nothing about zip or pickle.
 */
#include "pyval.h"

#include "memguard.h"
#include "sys.h"

#include <stdlib.h>
#include <string.h>

#define PV_CHUNK 16384      /* bump-allocated node/string memory per chunk */
#define PV_SHARE_MAX 16     /* tuples of at most this many leaves may be shared */

enum {
    PV_FL_INTERNAL = 1, /* is or holds a reader-internal node */
    PV_FL_USED = 2      /* a tuple that was inserted somewhere: frozen */
};

typedef struct pv_block {
    struct pv_block *next;
} pv_block;

struct pv_arena {
    unsigned char *chunk; /* current bump chunk */
    size_t used, cap;
    pv_block *blocks;     /* every malloc'd chunk / raw block */
    pv *owners;           /* nodes whose items/vals arrays must be freed */
};

static const struct {
    size_t size;
    const char *name, *storage;
} pv_dtypes[PV_NDTYPE] = {
    [PV_F32] = {4, "float32", "FloatStorage"},
    [PV_F64] = {8, "float64", "DoubleStorage"},
    [PV_F16] = {2, "float16", "HalfStorage"},
    [PV_BF16] = {2, "bfloat16", "BFloat16Storage"},
    [PV_I64] = {8, "int64", "LongStorage"},
    [PV_I32] = {4, "int32", "IntStorage"},
    [PV_I16] = {2, "int16", "ShortStorage"},
    [PV_I8] = {1, "int8", "CharStorage"},
    [PV_U8] = {1, "uint8", "ByteStorage"},
    [PV_BOOLT] = {1, "bool", "BoolStorage"},
};

size_t pv_dtype_size(pv_dtype d)
{
    return (unsigned)d < PV_NDTYPE ? pv_dtypes[d].size : 0;
}

const char *pv_dtype_name(pv_dtype d)
{
    return (unsigned)d < PV_NDTYPE ? pv_dtypes[d].name : "?";
}

const char *pv_dtype_storage(pv_dtype d)
{
    return (unsigned)d < PV_NDTYPE ? pv_dtypes[d].storage : "?";
}

/* ---- arena ------------------------------------------------------------ */

pv_arena *pv_arena_new(void)
{
    return calloc(1, sizeof(pv_arena));
}

void pv_arena_free(pv_arena *a)
{
    if (!a) return;
    for (pv *n = a->owners; n; n = n->next_) {
        free(n->u.c.items);
        free(n->u.c.vals);
    }
    pv_block *b = a->blocks;
    while (b) {
        pv_block *next = b->next;
        unet_aligned_free(b);
        b = next;
    }
    free(a);
}

/* A separately malloc'd block with its list link in front; the payload
 * starts 64 bytes in, so it is 64-byte aligned like the block itself. */
void *pv_arena_alloc(pv_arena *a, size_t n)
{
    if (!a || n > SIZE_MAX - 128) return NULL;
    size_t total = (n + 64 + 63) / 64 * 64;
    pv_block *b = unet_aligned_alloc(64, total);
    if (!b) return NULL;
    b->next = a->blocks;
    a->blocks = b;
    return (unsigned char *)b + 64;
}

static void *pv_bump(pv_arena *a, size_t n)
{
    n = (n + 15) / 16 * 16;
    if (n > PV_CHUNK / 4) return pv_arena_alloc(a, n);
    if (!a->chunk || a->cap - a->used < n) {
        unsigned char *c = pv_arena_alloc(a, PV_CHUNK);
        if (!c) return NULL;
        a->chunk = c;
        a->used = 0;
        a->cap = PV_CHUNK;
    }
    void *p = a->chunk + a->used;
    a->used += n;
    return p;
}

/* ---- constructors ----------------------------------------------------- */

pv *pv__node(pv_arena *a, pv_kind kind)
{
    if (!a) return NULL;
    pv *v = pv_bump(a, sizeof *v);
    if (!v) return NULL;
    memset(v, 0, sizeof *v);
    v->kind = kind;
    if (kind >= PV_LIST && kind <= PV_ODICT) {
        /* arrays grow with realloc; remember the node to free them */
        v->next_ = a->owners;
        a->owners = v;
        v->height_ = 1;
    }
    if (kind == PV__GLOBAL || kind == PV__STORAGE) v->flags_ = PV_FL_INTERNAL;
    return v;
}

pv *pv_none(pv_arena *a) { return pv__node(a, PV_NONE); }
pv *pv_list(pv_arena *a) { return pv__node(a, PV_LIST); }
pv *pv_tuple(pv_arena *a) { return pv__node(a, PV_TUPLE); }
pv *pv_dict(pv_arena *a) { return pv__node(a, PV_DICT); }
pv *pv_odict(pv_arena *a) { return pv__node(a, PV_ODICT); }

pv *pv_bool(pv_arena *a, int b)
{
    pv *v = pv__node(a, PV_BOOL);
    if (v) v->u.b = b != 0;
    return v;
}

pv *pv_int(pv_arena *a, int64_t i)
{
    pv *v = pv__node(a, PV_INT);
    if (v) v->u.i = i;
    return v;
}

pv *pv_float(pv_arena *a, double f)
{
    pv *v = pv__node(a, PV_FLOAT);
    if (v) v->u.f = f;
    return v;
}

pv *pv_strn(pv_arena *a, const char *s, size_t len)
{
    if (!s || len == SIZE_MAX) return NULL;
    pv *v = pv__node(a, PV_STR);
    if (!v) return NULL;
    char *copy = pv_bump(a, len + 1);
    if (!copy) return NULL;
    memcpy(copy, s, len);
    copy[len] = '\0';
    v->u.str.s = copy;
    v->u.str.len = len;
    return v;
}

pv *pv_str(pv_arena *a, const char *s)
{
    return s ? pv_strn(a, s, strlen(s)) : NULL;
}

pv *pv_tensor_new(pv_arena *a, pv_dtype dtype, int ndim, const int64_t *shape,
                  const void *data)
{
    if ((unsigned)dtype >= PV_NDTYPE || ndim < 0 || ndim > PV_MAX_DIM ||
        (ndim > 0 && !shape))
        return NULL;
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0) return NULL;
    pv *v = pv__node(a, PV_TENSOR);
    if (!v) return NULL;
    v->u.t.dtype = dtype;
    v->u.t.ndim = ndim;
    for (int i = 0; i < ndim; i++) v->u.t.shape[i] = shape[i];
    v->u.t.data = data;
    return v;
}

int pv__internal(const pv *v)
{
    return v && (v->flags_ & PV_FL_INTERNAL);
}

/* ---- container edits -------------------------------------------------- */

static int pv_is_container(const pv *v)
{
    return v->kind >= PV_LIST && v->kind <= PV_ODICT;
}

/* A tuple of a few leaves can never be part of a cycle and is cheap to
 * walk again, so it may have several parents (torch shares e.g. the betas
 * tuple between param groups). */
static int pv_shareable(const pv *v)
{
    if (!pv_is_container(v)) return 1;
    if (v->kind != PV_TUPLE || v->u.c.n > PV_SHARE_MAX) return 0;
    for (size_t i = 0; i < v->u.c.n; i++)
        if (pv_is_container(v->u.c.items[i])) return 0;
    return 1;
}

/* Links child under parent (checks only; the caller stores it). */
static int pv_adopt(pv *parent, pv *child)
{
    if (!child) return MG_EINVAL;
    if ((child->flags_ & PV_FL_INTERNAL) && parent->kind != PV_TUPLE)
        return MG_EINVAL; /* a global or a storage used as a value */
    int shared = pv_shareable(child);
    if (!shared && (child->parent_ || child == parent)) return MG_EINVAL;
    int depth = 0;
    for (const pv *q = parent; q; q = q->parent_) {
        if (q == child) return MG_EINVAL; /* would close a cycle */
        depth++;
    }
    if (depth + child->height_ > PV_MAX_DEPTH) return MG_EINVAL;
    if (child->kind == PV_TUPLE) child->flags_ |= PV_FL_USED;
    if (!shared) child->parent_ = parent;
    int h = child->height_ + 1;
    for (pv *q = parent; q && q->height_ < h; q = q->parent_, h++)
        q->height_ = h;
    if ((child->flags_ & PV_FL_INTERNAL)) parent->flags_ |= PV_FL_INTERNAL;
    return 0;
}

static int pv_grow(pv *c)
{
    if (c->u.c.n < c->u.c.cap) return 0;
    size_t cap = c->u.c.cap ? c->u.c.cap * 2 : 8;
    if (cap > SIZE_MAX / sizeof(pv *)) return MG_ENOMEM;
    pv **items = realloc(c->u.c.items, cap * sizeof(pv *));
    if (!items) return MG_ENOMEM;
    c->u.c.items = items;
    if (c->kind == PV_DICT || c->kind == PV_ODICT) {
        pv **vals = realloc(c->u.c.vals, cap * sizeof(pv *));
        if (!vals) return MG_ENOMEM;
        c->u.c.vals = vals;
    }
    c->u.c.cap = cap;
    return 0;
}

int pv_append(pv *seq, pv *item)
{
    if (!seq || !item || (seq->kind != PV_LIST && seq->kind != PV_TUPLE))
        return MG_EINVAL;
    if (seq->kind == PV_TUPLE && (seq->flags_ & PV_FL_USED)) return MG_EINVAL;
    int rc = pv_grow(seq);
    if (rc == 0) rc = pv_adopt(seq, item);
    if (rc < 0) return rc;
    seq->u.c.items[seq->u.c.n++] = item;
    return 0;
}

static int pv_key_ok(const pv *k)
{
    return k && (k->kind == PV_STR || k->kind == PV_INT);
}

int pv__dict_push(pv *d, pv *key, pv *val)
{
    if (!d || (d->kind != PV_DICT && d->kind != PV_ODICT) || !pv_key_ok(key))
        return MG_EINVAL;
    int rc = pv_grow(d);
    if (rc == 0) rc = pv_adopt(d, val);
    if (rc < 0) return rc;
    d->u.c.items[d->u.c.n] = key;
    d->u.c.vals[d->u.c.n++] = val;
    return 0;
}

static int pv_key_eq(const pv *a, const pv *b)
{
    if (a->kind != b->kind) return 0;
    if (a->kind == PV_INT) return a->u.i == b->u.i;
    return a->u.str.len == b->u.str.len &&
           memcmp(a->u.str.s, b->u.str.s, a->u.str.len) == 0;
}

int pv_set(pv *d, pv *key, pv *val)
{
    if (!d || (d->kind != PV_DICT && d->kind != PV_ODICT) || !pv_key_ok(key))
        return MG_EINVAL;
    for (size_t i = 0; i < d->u.c.n; i++) {
        if (pv_key_eq(d->u.c.items[i], key)) {
            int rc = pv_adopt(d, val);
            if (rc < 0) return rc;
            /* the old value leaves the tree; let it be adopted again */
            if (d->u.c.vals[i]->parent_ == d) d->u.c.vals[i]->parent_ = NULL;
            d->u.c.vals[i] = val;
            return 0;
        }
    }
    return pv__dict_push(d, key, val);
}

int pv_set_s(pv_arena *a, pv *d, const char *key, pv *val)
{
    pv *k = pv_str(a, key);
    return k ? pv_set(d, k, val) : MG_ENOMEM;
}

int pv_set_i(pv_arena *a, pv *d, int64_t key, pv *val)
{
    pv *k = pv_int(a, key);
    return k ? pv_set(d, k, val) : MG_ENOMEM;
}

/* ---- look-ups --------------------------------------------------------- */

static int pv_is_dict(const pv *d)
{
    return d && (d->kind == PV_DICT || d->kind == PV_ODICT);
}

pv *pv_get(const pv *d, const char *key)
{
    if (!pv_is_dict(d) || !key) return NULL;
    size_t len = strlen(key);
    for (size_t i = d->u.c.n; i-- > 0;) {
        const pv *k = d->u.c.items[i];
        if (k->kind == PV_STR && k->u.str.len == len && memcmp(k->u.str.s, key, len) == 0)
            return d->u.c.vals[i];
    }
    return NULL;
}

pv *pv_get_i(const pv *d, int64_t key)
{
    if (!pv_is_dict(d)) return NULL;
    for (size_t i = d->u.c.n; i-- > 0;) {
        const pv *k = d->u.c.items[i];
        if (k->kind == PV_INT && k->u.i == key) return d->u.c.vals[i];
    }
    return NULL;
}

size_t pv_len(const pv *c)
{
    return c && pv_is_container(c) ? c->u.c.n : 0;
}

pv *pv_at(const pv *c, size_t i)
{
    if (!c || (c->kind != PV_LIST && c->kind != PV_TUPLE) || i >= c->u.c.n) return NULL;
    return c->u.c.items[i];
}

pv *pv_key_at(const pv *d, size_t i)
{
    return pv_is_dict(d) && i < d->u.c.n ? d->u.c.items[i] : NULL;
}

pv *pv_val_at(const pv *d, size_t i)
{
    return pv_is_dict(d) && i < d->u.c.n ? d->u.c.vals[i] : NULL;
}

int64_t pv_numel(const pv_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

int pv_as_int(const pv *v, int64_t *out)
{
    if (!v || !out) return MG_EINVAL;
    switch (v->kind) {
    case PV_INT: *out = v->u.i; return 0;
    case PV_BOOL: *out = v->u.b; return 0;
    case PV_TENSOR:
        if (v->u.t.ndim != 0 || !v->u.t.data) return MG_EINVAL;
        if (v->u.t.dtype == PV_I64) {
            memcpy(out, v->u.t.data, 8);
            return 0;
        }
        if (v->u.t.dtype == PV_I32) {
            int32_t x;
            memcpy(&x, v->u.t.data, 4);
            *out = x;
            return 0;
        }
        return MG_EINVAL;
    default: return MG_EINVAL;
    }
}

int pv_as_float(const pv *v, double *out)
{
    if (!v || !out) return MG_EINVAL;
    if (v->kind == PV_FLOAT) {
        *out = v->u.f;
        return 0;
    }
    if (v->kind == PV_TENSOR && v->u.t.ndim == 0 && v->u.t.data) {
        if (v->u.t.dtype == PV_F32) {
            float x;
            memcpy(&x, v->u.t.data, 4);
            *out = x;
            return 0;
        }
        if (v->u.t.dtype == PV_F64) {
            memcpy(out, v->u.t.data, 8);
            return 0;
        }
    }
    int64_t i;
    if (pv_as_int(v, &i) == 0) {
        *out = (double)i;
        return 0;
    }
    return MG_EINVAL;
}

const char *pv_as_str(const pv *v)
{
    return v && v->kind == PV_STR ? v->u.str.s : NULL;
}

const pv_tensor *pv_get_tensor(const pv *d, const char *key, pv_dtype dtype,
                               int ndim, const int64_t *shape)
{
    const pv *v = pv_get(d, key);
    if (!v || v->kind != PV_TENSOR || v->u.t.dtype != dtype) return NULL;
    if (ndim >= 0) {
        if (v->u.t.ndim != ndim) return NULL;
        for (int i = 0; i < ndim; i++)
            if (!shape || v->u.t.shape[i] != shape[i]) return NULL;
    }
    return &v->u.t;
}

/* ---- equality --------------------------------------------------------- */

static int pv_equal_at(const pv *a, const pv *b, int depth)
{
    if (!a || !b) return a == b;
    if (a->kind != b->kind || depth > PV_MAX_DEPTH + 1) return 0;
    switch (a->kind) {
    case PV_NONE: return 1;
    case PV_BOOL: return a->u.b == b->u.b;
    case PV_INT: return a->u.i == b->u.i;
    case PV_FLOAT: return memcmp(&a->u.f, &b->u.f, sizeof(double)) == 0;
    case PV_STR: return pv_key_eq(a, b);
    case PV_TENSOR: {
        const pv_tensor *x = &a->u.t, *y = &b->u.t;
        if (x->dtype != y->dtype || x->ndim != y->ndim) return 0;
        for (int i = 0; i < x->ndim; i++)
            if (x->shape[i] != y->shape[i]) return 0;
        size_t n = (size_t)pv_numel(x) * pv_dtype_size(x->dtype);
        if (n == 0) return 1;
        if (!x->data || !y->data) return x->data == y->data;
        return memcmp(x->data, y->data, n) == 0;
    }
    case PV_LIST: case PV_TUPLE: case PV_DICT: case PV_ODICT:
        if (a->u.c.n != b->u.c.n) return 0;
        for (size_t i = 0; i < a->u.c.n; i++) {
            if (!pv_equal_at(a->u.c.items[i], b->u.c.items[i], depth + 1)) return 0;
            if ((a->kind == PV_DICT || a->kind == PV_ODICT) &&
                !pv_equal_at(a->u.c.vals[i], b->u.c.vals[i], depth + 1))
                return 0;
        }
        return 1;
    default: return 0;
    }
}

int pv_equal(const pv *a, const pv *b)
{
    return pv_equal_at(a, b, 0);
}
