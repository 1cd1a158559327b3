/* SPDX-License-Identifier: MIT */
/*
 * pickle_write.c: writes a pyval tree as the protocol-2 pickle that
 * torch.save puts in data.pkl (research/pytorch-interop.md section a; byte
 * for byte what ptckpt_ref.py's golden file holds), with the opcode names
 * of pickle_op.h.
 *
 * One emitter serves both passes: a counting run (no buffer) sizes the
 * scratch, the second fills it; neither allocates. The pickle uses no
 * memo: each GLOBAL is written again, which keeps the emitter stateless;
 * both torch unpicklers accept it. Every tensor becomes
 * torch._utils._rebuild_tensor_v2 over a persistent id naming storage
 * data/<n>, n counting tensors in the order they are met.
 *
 * It does not share storages between tensors, write views (one storage per
 * tensor, offset 0, row-major) or use protocol 3+ opcodes.
 */
#include "pickle_write.h"

#include "pickle_op.h"

#include <stdio.h>
#include <string.h>

typedef struct pkw {
    unsigned char *buf; /* NULL: count only */
    size_t cap, len;
    int bad;            /* invalid tree or size overflow */
    uint64_t nstor;     /* tensors emitted so far = next storage key */
    uint64_t payload;   /* their bytes */
} pkw;

static void pkw_put(pkw *p, const void *b, size_t n)
{
    if (p->len > SIZE_MAX - n) {
        p->bad = 1;
        return;
    }
    if (p->buf && p->len + n <= p->cap) memcpy(p->buf + p->len, b, n);
    p->len += n;
}

static void pkw_op(pkw *p, enum pickle_op op)
{
    unsigned char b = (unsigned char)op;
    pkw_put(p, &b, 1);
}

/* The low `width` bytes of u, little-endian (the width pairs K/M/J, LONG1,
 * BINUNICODE's length). */
static void pkw_le(pkw *p, uint64_t u, unsigned width)
{
    unsigned char b[8];
    for (unsigned i = 0; i < width; i++) b[i] = (unsigned char)(u >> (8 * i));
    pkw_put(p, b, width);
}

/* op and a `width`-byte little-endian argument */
static void pkw_op_arg(pkw *p, enum pickle_op op, uint64_t u, unsigned width)
{
    pkw_op(p, op);
    pkw_le(p, u, width);
}

/* The fewest two's-complement bytes that hold v, as Python's encode_long. */
static unsigned pkw_long_width(int64_t v)
{
    unsigned n = 1;
    for (; n < 8; n++) {
        int64_t lo = -((int64_t)1 << (8 * n - 1)), hi = ((int64_t)1 << (8 * n - 1)) - 1;
        if (v >= lo && v <= hi) break;
    }
    return n;
}

/* The shortest form, as pickle.dumps chooses it. */
static void pkw_int(pkw *p, int64_t v)
{
    if (v >= 0 && v <= 0xFF) {
        pkw_op_arg(p, PKL_BININT1, (uint64_t)v, 1);
    } else if (v >= 0 && v <= 0xFFFF) {
        pkw_op_arg(p, PKL_BININT2, (uint64_t)v, 2);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        pkw_op_arg(p, PKL_BININT, (uint32_t)(int32_t)v, 4);
    } else {
        unsigned n = pkw_long_width(v);
        pkw_op_arg(p, PKL_LONG1, n, 1);
        pkw_le(p, (uint64_t)v, n);
    }
}

/* BINFLOAT: big-endian */
static void pkw_float(pkw *p, double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(u >> (56 - 8 * i));
    pkw_op(p, PKL_BINFLOAT);
    pkw_put(p, b, 8);
}

static void pkw_str(pkw *p, const char *s, size_t len)
{
    if (len > UINT32_MAX) {
        p->bad = 1;
        return;
    }
    pkw_op_arg(p, PKL_BINUNICODE, len, 4);
    pkw_put(p, s, len);
}

static void pkw_cstr(pkw *p, const char *s)
{
    pkw_str(p, s, strlen(s));
}

static void pkw_global(pkw *p, const char *mod, const char *name)
{
    pkw_op(p, PKL_GLOBAL);
    pkw_put(p, mod, strlen(mod));
    pkw_put(p, "\n", 1);
    pkw_put(p, name, strlen(name));
    pkw_put(p, "\n", 1);
}

/* The op that closes a tuple of n items (a MARK before them when n > 3). */
static enum pickle_op pkw_tuple_op(size_t n)
{
    return n == 1 ? PKL_TUPLE1 : n == 2 ? PKL_TUPLE2 : n == 3 ? PKL_TUPLE3 : PKL_TUPLE;
}

static void pkw_int_tuple(pkw *p, const int64_t *v, int n)
{
    if (n == 0) {
        pkw_op(p, PKL_EMPTY_TUPLE);
        return;
    }
    if (n > 3) pkw_op(p, PKL_MARK);
    for (int i = 0; i < n; i++) pkw_int(p, v[i]);
    pkw_op(p, pkw_tuple_op((size_t)n));
}

static void pkw_empty_odict(pkw *p)
{
    pkw_global(p, "collections", "OrderedDict");
    pkw_op(p, PKL_EMPTY_TUPLE);
    pkw_op(p, PKL_REDUCE);
}

/* numel * itemsize of a tensor to write, or -1 when invalid/overflowing. */
static int64_t pkw_tensor_bytes(const pv_tensor *t)
{
    if ((unsigned)t->dtype >= PV_NDTYPE || t->ndim < 0 || t->ndim > PV_MAX_DIM) return -1;
    int64_t n = (int64_t)pv_dtype_size(t->dtype);
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0) return -1;
        if (t->shape[i] && n > INT64_MAX / t->shape[i]) return -1;
        n *= t->shape[i];
    }
    return n;
}

/* torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict()) */
static void pkw_tensor(pkw *p, const pv_tensor *t)
{
    int64_t nbytes = pkw_tensor_bytes(t);
    if (nbytes < 0 || (nbytes > 0 && !t->data)) {
        p->bad = 1;
        return;
    }
    p->payload = p->payload > UINT64_MAX - (uint64_t)nbytes ? UINT64_MAX
                                                             : p->payload + (uint64_t)nbytes;
    int64_t stride[PV_MAX_DIM], acc = 1;
    for (int i = t->ndim; i-- > 0;) {
        stride[i] = acc;
        acc *= t->shape[i];
    }
    char key[24];
    snprintf(key, sizeof key, "%llu", (unsigned long long)p->nstor++);
    pkw_global(p, "torch._utils", "_rebuild_tensor_v2");
    pkw_op(p, PKL_MARK);                  /* args tuple */
    pkw_op(p, PKL_MARK);                  /* persistent id tuple */
    pkw_cstr(p, "storage");
    pkw_global(p, "torch", pv_dtype_storage(t->dtype));
    pkw_cstr(p, key);                     /* zip entry data/<key> */
    pkw_cstr(p, "cpu");
    pkw_int(p, pv_numel(t));              /* storage size in elements */
    pkw_op(p, PKL_TUPLE);
    pkw_op(p, PKL_BINPERSID);
    pkw_int(p, 0);                        /* storage offset */
    pkw_int_tuple(p, t->shape, t->ndim);
    pkw_int_tuple(p, stride, t->ndim);
    pkw_op(p, PKL_NEWFALSE);              /* requires_grad = False */
    pkw_empty_odict(p);                   /* backward_hooks */
    pkw_op(p, PKL_TUPLE);
    pkw_op(p, PKL_REDUCE);
}

static void pkw_value(pkw *p, const pv *v, int depth);

static void pkw_tuple(pkw *p, const pv *v, int depth)
{
    size_t n = v->u.c.n;
    if (n == 0) {
        pkw_op(p, PKL_EMPTY_TUPLE);
        return;
    }
    if (n > 3) pkw_op(p, PKL_MARK);
    for (size_t i = 0; i < n; i++) pkw_value(p, v->u.c.items[i], depth + 1);
    pkw_op(p, pkw_tuple_op(n));
}

static void pkw_list(pkw *p, const pv *v, int depth)
{
    pkw_op(p, PKL_EMPTY_LIST);
    if (!v->u.c.n) return;
    pkw_op(p, PKL_MARK);
    for (size_t i = 0; i < v->u.c.n; i++) pkw_value(p, v->u.c.items[i], depth + 1);
    pkw_op(p, PKL_APPENDS);
}

static void pkw_dict(pkw *p, const pv *v, int depth)
{
    if (v->kind == PV_ODICT) pkw_empty_odict(p);
    else pkw_op(p, PKL_EMPTY_DICT);
    if (!v->u.c.n) return;
    pkw_op(p, PKL_MARK);
    for (size_t i = 0; i < v->u.c.n; i++) {
        const pv *k = v->u.c.items[i];
        if (!k || (k->kind != PV_STR && k->kind != PV_INT)) {
            p->bad = 1;
            return;
        }
        pkw_value(p, k, depth + 1);
        pkw_value(p, v->u.c.vals[i], depth + 1);
    }
    pkw_op(p, PKL_SETITEMS);
}

static void pkw_value(pkw *p, const pv *v, int depth)
{
    if (!v || depth > PV_MAX_DEPTH + 1 || p->bad) {
        p->bad = 1;
        return;
    }
    switch (v->kind) {
    case PV_NONE: pkw_op(p, PKL_NONE); break;
    case PV_BOOL: pkw_op(p, v->u.b ? PKL_NEWTRUE : PKL_NEWFALSE); break;
    case PV_INT: pkw_int(p, v->u.i); break;
    case PV_FLOAT: pkw_float(p, v->u.f); break;
    case PV_STR: pkw_str(p, v->u.str.s, v->u.str.len); break;
    case PV_TENSOR: pkw_tensor(p, &v->u.t); break;
    case PV_TUPLE: pkw_tuple(p, v, depth); break;
    case PV_LIST: pkw_list(p, v, depth); break;
    case PV_DICT: case PV_ODICT: pkw_dict(p, v, depth); break;
    default: p->bad = 1; break;           /* reader-internal kinds */
    }
}

int pkw_emit(const pv *root, unsigned char *buf, size_t cap, pkw_info *info)
{
    pkw p = {.buf = buf, .cap = cap};
    pkw_op_arg(&p, PKL_PROTO, 2, 1);      /* protocol 2, as torch.save */
    pkw_value(&p, root, 0);
    pkw_op(&p, PKL_STOP);
    *info = (pkw_info){p.len, p.nstor, p.payload};
    return p.bad ? -1 : 0;
}

/* The same walk as pkw_value's, tensors only. */
static int pkw_walk(const pv *v, int depth, pkw_tensor_fn fn, void *ctx)
{
    if (!v || depth > PV_MAX_DEPTH + 1) return 0;
    if (v->kind == PV_TENSOR) return fn(ctx, &v->u.t, (uint64_t)pkw_tensor_bytes(&v->u.t));
    if (v->kind < PV_LIST || v->kind > PV_ODICT) return 0;
    int dict = v->kind == PV_DICT || v->kind == PV_ODICT, rc = 0;
    for (size_t i = 0; i < v->u.c.n && !rc; i++)
        rc = pkw_walk(dict ? v->u.c.vals[i] : v->u.c.items[i], depth + 1, fn, ctx);
    return rc;
}

int pkw_each_tensor(const pv *root, pkw_tensor_fn fn, void *ctx)
{
    return pkw_walk(root, 0, fn, ctx);
}
