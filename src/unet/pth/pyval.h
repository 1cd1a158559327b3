/* SPDX-License-Identifier: MIT */
/*
 * pyval.h: a small tree of Python values, the common language of the .pth
 * writer (pickle_write.c, zip_write.c) and reader (pickle_read.c,
 * zip_read.c). A tree holds None, bool, int (int64), float (double), str,
 * tensors, list, tuple, dict and OrderedDict (keys: str or int only).
 *
 * All nodes of a tree live in one pv_arena and are freed together with
 * pv_arena_free(); there is no per-node free. A tensor node only points at
 * its bytes: the caller owns them when writing (no copy is ever made), the
 * reader's arena owns them after a load.
 *
 * The tree is kept acyclic on purpose, also for hostile input: a list, dict
 * or non-flat tuple can have one parent only, inserting a container into its
 * own descendant fails, and nesting is capped at PV_MAX_DEPTH. Leaves and
 * tuples of leaves may be shared (torch shares tensors and small tuples).
 * So every walk over a tree terminates and stays small.
 *
 * Not thread-safe per arena. It does not do I/O or know about zip/pickle.
 */
#ifndef UNET_PYVAL_H
#define UNET_PYVAL_H

#include <stddef.h>
#include <stdint.h>

#define PV_MAX_DIM 8    /* tensor rank limit (the trainer needs 4) */
#define PV_MAX_DEPTH 64 /* container nesting limit */

typedef enum pv_kind {
    PV_NONE,
    PV_BOOL,
    PV_INT,
    PV_FLOAT,
    PV_STR,
    PV_TENSOR,
    PV_LIST,
    PV_TUPLE,
    PV_DICT,
    PV_ODICT,  /* collections.OrderedDict, e.g. a state_dict */
    PV__GLOBAL, /* reader-internal: never in a finished tree */
    PV__STORAGE /* reader-internal: never in a finished tree */
} pv_kind;

/* Torch storage dtypes. The trainer uses F32 and I64; the others are read
 * (and can be written) as raw bytes, the caller decides what to do. */
typedef enum pv_dtype {
    PV_F32,  /* torch.FloatStorage */
    PV_F64,  /* DoubleStorage */
    PV_F16,  /* HalfStorage */
    PV_BF16, /* BFloat16Storage */
    PV_I64,  /* LongStorage */
    PV_I32,  /* IntStorage */
    PV_I16,  /* ShortStorage */
    PV_I8,   /* CharStorage */
    PV_U8,   /* ByteStorage */
    PV_BOOLT, /* BoolStorage */
    PV_NDTYPE
} pv_dtype;

size_t pv_dtype_size(pv_dtype d);
const char *pv_dtype_name(pv_dtype d);      /* "float32", "int64", ... */
const char *pv_dtype_storage(pv_dtype d);   /* "FloatStorage", ... */

/* A contiguous row-major tensor. ndim 0 is a scalar (numel 1). */
typedef struct pv_tensor {
    pv_dtype dtype;
    int ndim;
    int64_t shape[PV_MAX_DIM];
    const void *data; /* numel * itemsize bytes; not owned by the node */
} pv_tensor;

typedef struct pv pv;
struct pv {
    pv_kind kind;
    union {
        int b;          /* PV_BOOL: 0 / 1 */
        int64_t i;      /* PV_INT */
        double f;       /* PV_FLOAT */
        struct {
            char *s;    /* NUL-terminated UTF-8 (no embedded NUL check) */
            size_t len;
        } str;
        pv_tensor t;    /* PV_TENSOR */
        struct {        /* PV__GLOBAL: "module", "name" */
            char *mod, *name;
        } g;
        struct {        /* PV__STORAGE: bytes of one data/<key> entry */
            pv_dtype dtype;
            const void *data;
            int64_t numel;
        } st;
        struct {
            pv **items; /* PV_LIST / PV_TUPLE items; PV_DICT / PV_ODICT: */
            pv **vals;  /* keys in items[], values in vals[] */
            size_t n, cap;
        } c;
    } u;
    /* bookkeeping for the acyclic-tree rule (see top of file) */
    pv *parent_;
    int height_;   /* 0 for leaves, 1 + max child height for containers */
    int flags_;
    pv *next_;     /* arena list of nodes that own an array */
};

typedef struct pv_arena pv_arena;

pv_arena *pv_arena_new(void);
/* Frees every node, string, array and attached block. NULL is fine. */
void pv_arena_free(pv_arena *a);
/* Raw memory owned by the arena (the reader keeps file bytes here). The
 * block is 64-byte aligned. NULL when out of memory. */
void *pv_arena_alloc(pv_arena *a, size_t n);

/* Constructors: NULL when out of memory (or, for pv_tensor, a bad rank
 * or a negative dimension). pv_str copies s. */
pv *pv_none(pv_arena *a);
pv *pv_bool(pv_arena *a, int v);
pv *pv_int(pv_arena *a, int64_t v);
pv *pv_float(pv_arena *a, double v);
pv *pv_str(pv_arena *a, const char *s);
pv *pv_strn(pv_arena *a, const char *s, size_t len);
pv *pv_tensor_new(pv_arena *a, pv_dtype dtype, int ndim, const int64_t *shape,
                  const void *data);
pv *pv_list(pv_arena *a);
pv *pv_tuple(pv_arena *a);
pv *pv_dict(pv_arena *a);
pv *pv_odict(pv_arena *a);

/* Container edits. Return 0, MG_ENOMEM, or MG_EINVAL (wrong kind, key not
 * str/int, a second parent, a cycle, nesting deeper than PV_MAX_DEPTH).
 * pv_append works on lists and tuples (build tuples before sharing them).
 * pv_set replaces the value of an existing equal key, else appends. */
int pv_append(pv *seq, pv *item);
int pv_set(pv *dict, pv *key, pv *val);
/* Shorthands that make the key node in the dict's arena. */
int pv_set_s(pv_arena *a, pv *dict, const char *key, pv *val);
int pv_set_i(pv_arena *a, pv *dict, int64_t key, pv *val);

/* Look-ups (NULL when absent or when `d` is not a dict). With duplicate
 * keys (possible in a loaded file), the last one wins, as in Python. */
pv *pv_get(const pv *d, const char *key);
pv *pv_get_i(const pv *d, int64_t key);
size_t pv_len(const pv *c);          /* items of a list/tuple/dict, else 0 */
pv *pv_at(const pv *c, size_t i);    /* list/tuple item, NULL when out of range */
pv *pv_key_at(const pv *d, size_t i);
pv *pv_val_at(const pv *d, size_t i);

/* Scalar reads. 0 on success, MG_EINVAL when the kind does not fit.
 * pv_as_int takes int, bool and a 0-d integer tensor; pv_as_float also
 * takes a 0-d float32/float64 tensor (torch 1.13's Adam "step"). */
int pv_as_int(const pv *v, int64_t *out);
int pv_as_float(const pv *v, double *out);
const char *pv_as_str(const pv *v); /* NULL unless PV_STR */

int64_t pv_numel(const pv_tensor *t); /* product of shape; 1 for 0-d */
/* Tensor at d[key] with the given dtype; when ndim >= 0 also the rank and
 * shape must match. NULL otherwise. */
const pv_tensor *pv_get_tensor(const pv *d, const char *key, pv_dtype dtype,
                               int ndim, const int64_t *shape);

/* Structural equality: same kinds (list and tuple differ, dict and
 * OrderedDict differ), same order, tensors by dtype, shape and bytes,
 * floats by bit pattern. */
int pv_equal(const pv *a, const pv *b);

/* For pickle_read.c only: a node of any kind (internal ones included), and a
 * dict insert that keeps duplicate keys (a loaded dict is never searched
 * while it is built, so this stays linear on hostile input). */
pv *pv__node(pv_arena *a, pv_kind kind);
int pv__dict_push(pv *dict, pv *key, pv *val);
int pv__internal(const pv *v); /* is or holds a PV__GLOBAL/PV__STORAGE */

#endif /* UNET_PYVAL_H */
