/* SPDX-License-Identifier: MIT */
/*
 * pickle_read.c: the unpickler for torch.save's data.pkl (protocol 2;
 * research/pytorch-interop.md section b). A stack machine with the opcodes
 * of pickle_op.h, one small handler each, a memo of node pointers, and
 * REDUCE only for OrderedDict and the tensor/parameter rebuild functions;
 * every other GLOBAL is refused when it is read, so nothing outside the
 * allowlist is ever "called". All input is untrusted: every read is
 * bounds-checked, sizes are overflow-checked, pops never cross a MARK, and
 * the tree stays acyclic and at most PV_MAX_DEPTH deep (pyval.c).
 *
 * It does not read the zip (zip_read.c hands it the storages), byte-swap
 * big-endian files, convert dtypes, or materialise non-contiguous views.
 */
#include "pickle_read.h"

#include "errf.h"
#include "memguard.h"
#include "pickle_op.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PK_STOPPED 1 /* a handler's "the result is ready" */

typedef struct pk_vm {
    zr_ctx *z;
    const unsigned char *p; /* data.pkl */
    uint64_t n, pos, op_at;
    pv **stack;
    size_t sp, scap;
    size_t *marks;          /* stack heights at each MARK */
    size_t nmarks, mcap;
    pv **memo;
    size_t memo_cap;
    pv *result;             /* set by STOP */
} pk_vm;

/* "data.pkl: <message> at offset <the opcode's offset>", once. */
static int pk_fail(pk_vm *k, int rc, const char *fmt, ...)
    UNET_PRINTF(3, 4);

static int pk_fail(pk_vm *k, int rc, const char *fmt, ...)
{
    zr_ctx *z = k->z;
    if (z->err && z->err_len && !z->err[0]) {
        char msg[192];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        snprintf(z->err, z->err_len, "data.pkl: %s at offset %llu", msg,
                 (unsigned long long)k->op_at);
    }
    return rc;
}

/* ---- the stack, the marks and the memo ------------------------------- */

static int pk_push(pk_vm *k, pv *v)
{
    if (!v) return pk_fail(k, MG_ENOMEM, "out of memory");
    if (k->sp == k->scap) {
        size_t cap = k->scap ? k->scap * 2 : 64;
        pv **s = realloc(k->stack, cap * sizeof *s);
        if (!s) return pk_fail(k, MG_ENOMEM, "out of memory");
        k->stack = s;
        k->scap = cap;
    }
    k->stack[k->sp++] = v;
    return 0;
}

static size_t pk_fence(const pk_vm *k)
{
    return k->nmarks ? k->marks[k->nmarks - 1] : 0;
}

/* Pops one value; never below the newest MARK (as CPython's unpickler). */
static pv *pk_pop(pk_vm *k)
{
    if (k->sp <= pk_fence(k)) return NULL;
    return k->stack[--k->sp];
}

static pv *pk_top(pk_vm *k)
{
    return k->sp > pk_fence(k) ? k->stack[k->sp - 1] : NULL;
}

/* Items above the newest mark: [*first, sp); the mark is removed. */
static int pk_pop_mark(pk_vm *k, size_t *first)
{
    if (!k->nmarks) return pk_fail(k, MG_EPARSE, "no MARK on the stack");
    *first = k->marks[--k->nmarks];
    return 0;
}

/* The container just below the items of a popped mark, or NULL. */
static pv *pk_below(pk_vm *k, size_t first)
{
    return first > pk_fence(k) ? k->stack[first - 1] : NULL;
}

static int pk_memo_put(pk_vm *k, uint64_t idx)
{
    pv *top = pk_top(k);
    if (!top) return pk_fail(k, MG_EPARSE, "BINPUT on an empty stack");
    /* a dense memo (torch's) never has more entries than half the pickle */
    if (idx > k->n) return pk_fail(k, MG_EPARSE, "memo index %llu out of range",
                                   (unsigned long long)idx);
    if (idx >= k->memo_cap) {
        size_t cap = k->memo_cap ? k->memo_cap : 64;
        while (cap <= idx) cap *= 2;
        pv **m = realloc(k->memo, cap * sizeof *m);
        if (!m) return pk_fail(k, MG_ENOMEM, "out of memory");
        memset(m + k->memo_cap, 0, (cap - k->memo_cap) * sizeof *m);
        k->memo = m;
        k->memo_cap = cap;
    }
    k->memo[idx] = top;
    return 0;
}

static int pk_memo_get(pk_vm *k, uint64_t idx)
{
    if (idx >= k->memo_cap || !k->memo[idx])
        return pk_fail(k, MG_EPARSE, "memo index %llu out of range", (unsigned long long)idx);
    return pk_push(k, k->memo[idx]);
}

/* ---- opcode arguments ------------------------------------------------- */

static int pk_need(pk_vm *k, uint64_t n)
{
    if (n > k->n - k->pos) return pk_fail(k, MG_EPARSE, "truncated argument");
    return 0;
}

/* The next `width` bytes (0..8) as an unsigned little-endian number. */
static int pk_arg_u(pk_vm *k, unsigned width, uint64_t *v)
{
    int rc = pk_need(k, width);
    if (rc) return rc;
    *v = 0;
    for (unsigned i = 0; i < width; i++) *v |= (uint64_t)k->p[k->pos + i] << (8 * i);
    k->pos += width;
    return 0;
}

/* u holds a `width`-byte two's complement number: its value. */
static int64_t pk_signed(uint64_t u, unsigned width)
{
    if (width > 0 && width < 8 && (u >> (8 * width - 1) & 1)) u |= ~(uint64_t)0 << (8 * width);
    int64_t v;
    memcpy(&v, &u, 8);
    return v;
}

/* ---- globals, storages, tensors: the allowlist ------------------------ */

static int pk_is_global(const pv *v, const char *mod, const char *name)
{
    return v && v->kind == PV__GLOBAL && strcmp(v->u.g.mod, mod) == 0 &&
           strcmp(v->u.g.name, name) == 0;
}

static int pk_storage_dtype(const char *name)
{
    for (int d = 0; d < PV_NDTYPE; d++)
        if (strcmp(pv_dtype_storage((pv_dtype)d), name) == 0) return d;
    return -1;
}

/* Nothing outside this list is ever pushed, so nothing else can be reduced. */
static int pk_global_allowed(const char *mod, const char *name)
{
    if (strcmp(mod, "collections") == 0) return strcmp(name, "OrderedDict") == 0;
    if (strcmp(mod, "torch._utils") == 0)
        return strcmp(name, "_rebuild_tensor_v2") == 0 || strcmp(name, "_rebuild_parameter") == 0 ||
               strcmp(name, "_rebuild_parameter_with_state") == 0;
    return strcmp(mod, "torch") == 0 && pk_storage_dtype(name) >= 0;
}

/* One newline-terminated line of at most 255 bytes at the argument, into
 * out (NUL-terminated); -1 when there is none. */
static int pk_line(pk_vm *k, char out[256])
{
    const char *s = (const char *)k->p + k->pos;
    uint64_t left = k->n - k->pos;
    const char *nl = memchr(s, '\n', left < 256 ? (size_t)left : 256);
    if (!nl) return -1;
    size_t len = (size_t)(nl - s);
    memcpy(out, s, len);
    out[len] = '\0';
    k->pos += len + 1;
    return 0;
}

/* GLOBAL "module\nname\n" */
static int pk_op_global(pk_vm *k)
{
    char mod[256], name[256];
    if (pk_line(k, mod))
        return pk_fail(k, MG_EPARSE, "GLOBAL without a newline-terminated module");
    if (pk_line(k, name))
        return pk_fail(k, MG_EPARSE, "GLOBAL without a newline-terminated name");
    if (!pk_global_allowed(mod, name)) {
        /* keep the message printable whatever the bytes were */
        for (char *q = mod; *q; q++) if (*q < 0x20 || *q > 0x7E) *q = '?';
        for (char *q = name; *q; q++) if (*q < 0x20 || *q > 0x7E) *q = '?';
        return pk_fail(k, MG_EPARSE, "global %s.%s is not allowed", mod, name);
    }
    pv *g = pv__node(k->z->arena, PV__GLOBAL);
    if (!g) return pk_fail(k, MG_ENOMEM, "out of memory");
    pv *ms = pv_str(k->z->arena, mod), *ns = pv_str(k->z->arena, name);
    if (!ms || !ns) return pk_fail(k, MG_ENOMEM, "out of memory");
    g->u.g.mod = ms->u.str.s;
    g->u.g.name = ns->u.str.s;
    return pk_push(k, g);
}

static int pk_int_of(const pv *v, int64_t *out)
{
    if (!v || v->kind != PV_INT) return -1;
    *out = v->u.i;
    return 0;
}

/* The zip entry data/<key> of a storage of numel elements of dtype dt. */
static int pk_storage_bytes(pk_vm *k, const pv *key, int dt, int64_t numel, const void **data)
{
    char rel[160];
    if (key->u.str.len > 128) return pk_fail(k, MG_EPARSE, "storage key too long");
    int rl = snprintf(rel, sizeof rel, "data/%s", key->u.str.s);
    zr_entry *e = zr_find(k->z, rel, (size_t)rl);
    if (!e) return pk_fail(k, MG_EPARSE, "storage '%s' has no zip entry", rel);
    size_t isz = pv_dtype_size((pv_dtype)dt);
    if ((uint64_t)numel > UINT64_MAX / isz || (uint64_t)numel * isz != e->size)
        return pk_fail(k, MG_EPARSE, "storage '%s' holds %llu bytes, expected %lld x %zu", rel,
                       (unsigned long long)e->size, (long long)numel, isz);
    int rc = zr_check_crc(k->z, e);
    if (rc) return rc;
    /* an int64 or float at an odd address is undefined behaviour for the
     * caller: such (never torch-written) storages are copied once */
    *data = zr_payload(k->z, e, isz);
    if (!*data) return pk_fail(k, MG_ENOMEM, "out of memory for storage '%s'", rel);
    return 0;
}

/* BINPERSID ('storage', torch.XStorage, key, location, numel) -> a storage */
static int pk_op_persid(pk_vm *k)
{
    pv *pid = pk_pop(k);
    if (!pid || pid->kind != PV_TUPLE || pid->u.c.n != 5 ||
        !pv_as_str(pid->u.c.items[0]) || strcmp(pv_as_str(pid->u.c.items[0]), "storage") != 0 ||
        pid->u.c.items[1]->kind != PV__GLOBAL || strcmp(pid->u.c.items[1]->u.g.mod, "torch") != 0 ||
        pid->u.c.items[2]->kind != PV_STR)
        return pk_fail(k, MG_EPARSE, "BINPERSID needs ('storage', torch.<X>Storage, key, "
                       "location, numel)");
    int dt = pk_storage_dtype(pid->u.c.items[1]->u.g.name);
    int64_t numel;
    if (dt < 0 || pk_int_of(pid->u.c.items[4], &numel) || numel < 0)
        return pk_fail(k, MG_EPARSE, "bad storage type or element count");
    const void *data;
    int rc = pk_storage_bytes(k, pid->u.c.items[2], dt, numel, &data);
    if (rc) return rc;
    pv *st = pv__node(k->z->arena, PV__STORAGE);
    if (!st) return pk_fail(k, MG_ENOMEM, "out of memory");
    st->u.st.dtype = (pv_dtype)dt;
    st->u.st.data = data;
    st->u.st.numel = numel;
    return pk_push(k, st);
}

/* Shape and element count of size/stride tuples; only row-major strides
 * (a dimension of 1 may have any stride). */
static int pk_tensor_shape(pk_vm *k, const pv *size, const pv *stride, int64_t *shape,
                           int64_t *numel)
{
    size_t nd = size->u.c.n;
    if (nd > PV_MAX_DIM)
        return pk_fail(k, MG_EPARSE, "tensor of rank %zu (max %d)", nd, PV_MAX_DIM);
    if (stride->u.c.n != nd) return pk_fail(k, MG_EPARSE, "size and stride ranks differ");
    int64_t st[PV_MAX_DIM];
    *numel = 1;
    for (size_t i = 0; i < nd; i++) {
        if (pk_int_of(size->u.c.items[i], &shape[i]) || shape[i] < 0 ||
            pk_int_of(stride->u.c.items[i], &st[i]))
            return pk_fail(k, MG_EPARSE, "tensor size/stride entries must be ints >= 0");
        if (shape[i] && *numel > INT64_MAX / shape[i])
            return pk_fail(k, MG_EPARSE, "tensor element count overflows");
        *numel *= shape[i];
    }
    if (*numel == 0) return 0;
    int64_t want = 1;
    for (size_t i = nd; i-- > 0;) {
        if (shape[i] != 1 && st[i] != want)
            return pk_fail(k, MG_EPARSE, "non-contiguous tensor (dim %zu has stride %lld, "
                           "expected %lld); save it .contiguous()", i,
                           (long long)st[i], (long long)want);
        want *= shape[i];
    }
    return 0;
}

/* _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]) */
static int pk_rebuild_tensor(pk_vm *k, const pv *args)
{
    if (args->u.c.n < 4 || args->u.c.n > 7)
        return pk_fail(k, MG_EPARSE, "_rebuild_tensor_v2 takes 6 or 7 arguments, got %zu",
                       args->u.c.n);
    pv *const *a = args->u.c.items;
    int64_t off, shape[PV_MAX_DIM], numel = 0;
    if (a[0]->kind != PV__STORAGE || pk_int_of(a[1], &off) || off < 0 ||
        a[2]->kind != PV_TUPLE || a[3]->kind != PV_TUPLE)
        return pk_fail(k, MG_EPARSE, "_rebuild_tensor_v2: bad storage, offset, size or stride");
    int rc = pk_tensor_shape(k, a[2], a[3], shape, &numel);
    if (rc) return rc;
    const pv *st = a[0];
    if (off > st->u.st.numel || numel > st->u.st.numel - off)
        return pk_fail(k, MG_EPARSE, "tensor of %lld elements at offset %lld overruns its "
                       "storage of %lld", (long long)numel, (long long)off,
                       (long long)st->u.st.numel);
    const unsigned char *data = st->u.st.data;
    data += (size_t)off * pv_dtype_size(st->u.st.dtype);
    int nd = (int)a[2]->u.c.n;
    return pk_push(k, pv_tensor_new(k->z->arena, st->u.st.dtype, nd, shape, data));
}

/* REDUCE: callable(args) for the allowlisted callables only */
static int pk_op_reduce(pk_vm *k)
{
    pv *args = pk_pop(k), *f = pk_pop(k);
    if (!args || !f || args->kind != PV_TUPLE || f->kind != PV__GLOBAL)
        return pk_fail(k, MG_EPARSE, "REDUCE needs a global and an argument tuple");
    if (pk_is_global(f, "collections", "OrderedDict")) {
        if (args->u.c.n != 0) return pk_fail(k, MG_EPARSE, "OrderedDict() with arguments");
        return pk_push(k, pv_odict(k->z->arena));
    }
    if (pk_is_global(f, "torch._utils", "_rebuild_tensor_v2")) return pk_rebuild_tensor(k, args);
    if (pk_is_global(f, "torch._utils", "_rebuild_parameter") ||
        pk_is_global(f, "torch._utils", "_rebuild_parameter_with_state")) {
        if (args->u.c.n < 1 || args->u.c.items[0]->kind != PV_TENSOR)
            return pk_fail(k, MG_EPARSE, "_rebuild_parameter without a tensor");
        return pk_push(k, args->u.c.items[0]);
    }
    return pk_fail(k, MG_EPARSE, "REDUCE of %s.%s is not allowed", f->u.g.mod, f->u.g.name);
}

/* ---- containers ------------------------------------------------------- */

static int pk_tuple_from(pk_vm *k, size_t first)
{
    pv *t = pv_tuple(k->z->arena);
    if (!t) return pk_fail(k, MG_ENOMEM, "out of memory");
    for (size_t i = first; i < k->sp; i++) {
        int rc = pv_append(t, k->stack[i]);
        if (rc == MG_ENOMEM) return pk_fail(k, rc, "out of memory");
        if (rc) return pk_fail(k, MG_EPARSE, "object shared, cyclic or nested deeper than %d",
                               PV_MAX_DEPTH);
    }
    k->sp = first;
    return pk_push(k, t);
}

static int pk_edit_rc(pk_vm *k, int rc, const char *what)
{
    if (rc == 0) return 0;
    if (rc == MG_ENOMEM) return pk_fail(k, rc, "out of memory");
    return pk_fail(k, MG_EPARSE, "%s: wrong target, key not str/int, or an object that is "
                   "shared, cyclic or nested deeper than %d", what, PV_MAX_DEPTH);
}

static int pk_op_mark(pk_vm *k)
{
    if (k->nmarks == k->mcap) {
        size_t cap = k->mcap ? k->mcap * 2 : 32;
        size_t *m = realloc(k->marks, cap * sizeof *m);
        if (!m) return pk_fail(k, MG_ENOMEM, "out of memory");
        k->marks = m;
        k->mcap = cap;
    }
    k->marks[k->nmarks++] = k->sp;
    return 0;
}

static int pk_op_tuple(pk_vm *k)
{
    size_t first = 0;
    int rc = pk_pop_mark(k, &first);
    return rc ? rc : pk_tuple_from(k, first);
}

/* TUPLE1..TUPLE3 */
static int pk_op_tuple_n(pk_vm *k, size_t n)
{
    if (k->sp < pk_fence(k) + n) return pk_fail(k, MG_EPARSE, "TUPLE%zu on a short stack", n);
    return pk_tuple_from(k, k->sp - n);
}

static int pk_op_setitem(pk_vm *k)
{
    pv *v = pk_pop(k), *key = pk_pop(k), *d = pk_top(k);
    if (!v || !key || !d) return pk_fail(k, MG_EPARSE, "SETITEM on a short stack");
    return pk_edit_rc(k, pv__dict_push(d, key, v), "SETITEM");
}

static int pk_op_setitems(pk_vm *k)
{
    size_t first = 0;
    int rc = pk_pop_mark(k, &first);
    if (rc) return rc;
    pv *d = pk_below(k, first);
    if (!d || (k->sp - first) % 2)
        return pk_fail(k, MG_EPARSE, "SETITEMS needs a dict and key/value pairs");
    for (size_t i = first; i < k->sp && !rc; i += 2)
        rc = pk_edit_rc(k, pv__dict_push(d, k->stack[i], k->stack[i + 1]), "SETITEMS");
    k->sp = first;
    return rc;
}

static int pk_op_append(pk_vm *k)
{
    pv *v = pk_pop(k), *l = pk_top(k);
    if (!v || !l || l->kind != PV_LIST) return pk_fail(k, MG_EPARSE, "APPEND needs a list");
    return pk_edit_rc(k, pv_append(l, v), "APPEND");
}

static int pk_op_appends(pk_vm *k)
{
    size_t first = 0;
    int rc = pk_pop_mark(k, &first);
    if (rc) return rc;
    pv *l = pk_below(k, first);
    if (!l || l->kind != PV_LIST) return pk_fail(k, MG_EPARSE, "APPENDS needs a list");
    for (size_t i = first; i < k->sp && !rc; i++)
        rc = pk_edit_rc(k, pv_append(l, k->stack[i]), "APPENDS");
    k->sp = first;
    return rc;
}

/* BUILD: only an OrderedDict's _metadata, which is dropped */
static int pk_op_build(pk_vm *k)
{
    pv *state = pk_pop(k), *inst = pk_top(k);
    if (!state || !inst || inst->kind != PV_ODICT)
        return pk_fail(k, MG_EPARSE, "BUILD on something other than an OrderedDict");
    return 0;
}

/* ---- scalars, memo, protocol, stop ------------------------------------ */

/* BININT1, BININT2 (unsigned), BININT (signed) */
static int pk_op_int(pk_vm *k, unsigned width, int is_signed)
{
    uint64_t u;
    int rc = pk_arg_u(k, width, &u);
    if (rc) return rc;
    return pk_push(k, pv_int(k->z->arena, is_signed ? pk_signed(u, width) : (int64_t)u));
}

/* LONG1: u8 n, then n bytes of two's complement, little-endian */
static int pk_op_long1(pk_vm *k)
{
    uint64_t n, u;
    int rc = pk_arg_u(k, 1, &n);
    if (rc == 0) rc = pk_need(k, n);
    if (rc) return rc;
    if (n > 8) return pk_fail(k, MG_EPARSE, "int of %u bytes does not fit int64", (unsigned)n);
    if ((rc = pk_arg_u(k, (unsigned)n, &u))) return rc;
    return pk_push(k, pv_int(k->z->arena, pk_signed(u, (unsigned)n)));
}

/* BINFLOAT: an IEEE double, big-endian */
static int pk_op_binfloat(pk_vm *k)
{
    int rc = pk_need(k, 8);
    if (rc) return rc;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) u = u << 8 | k->p[k->pos + (unsigned)i];
    k->pos += 8;
    double d;
    memcpy(&d, &u, 8);
    return pk_push(k, pv_float(k->z->arena, d));
}

/* BINUNICODE: u32 length, then that many bytes of UTF-8 */
static int pk_op_binunicode(pk_vm *k)
{
    uint64_t n;
    int rc = pk_arg_u(k, 4, &n);
    if (rc == 0) rc = pk_need(k, n);
    if (rc) return rc;
    const char *s = (const char *)k->p + k->pos;
    k->pos += n;
    return pk_push(k, pv_strn(k->z->arena, s, (size_t)n));
}

/* BINPUT, LONG_BINPUT */
static int pk_op_put(pk_vm *k, unsigned width)
{
    uint64_t idx;
    int rc = pk_arg_u(k, width, &idx);
    return rc ? rc : pk_memo_put(k, idx);
}

/* BINGET, LONG_BINGET */
static int pk_op_get(pk_vm *k, unsigned width)
{
    uint64_t idx;
    int rc = pk_arg_u(k, width, &idx);
    return rc ? rc : pk_memo_get(k, idx);
}

static int pk_op_proto(pk_vm *k)
{
    uint64_t v;
    int rc = pk_arg_u(k, 1, &v);
    if (rc) return rc;
    if (v > 2)
        return pk_fail(k, MG_EPARSE, "pickle protocol %u (torch.save writes 2)", (unsigned)v);
    return 0;
}

static int pk_op_stop(pk_vm *k)
{
    pv *r = pk_pop(k);
    if (!r || k->nmarks)
        return pk_fail(k, MG_EPARSE, "STOP with %s", r ? "an open MARK" : "an empty stack");
    if (pv__internal(r)) return pk_fail(k, MG_EPARSE, "result holds a bare global or storage");
    k->result = r;
    return PK_STOPPED;
}

/* ---- the machine ------------------------------------------------------ */

/* One opcode: 0 to go on, PK_STOPPED, or a negative error. */
static int pk_step(pk_vm *k, unsigned op)
{
    pv_arena *A = k->z->arena;
    switch (op) {
    case PKL_PROTO:        return pk_op_proto(k);
    case PKL_STOP:         return pk_op_stop(k);
    case PKL_MARK:         return pk_op_mark(k);
    case PKL_GLOBAL:       return pk_op_global(k);
    case PKL_REDUCE:       return pk_op_reduce(k);
    case PKL_BINPERSID:    return pk_op_persid(k);
    case PKL_BUILD:        return pk_op_build(k);
    case PKL_EMPTY_TUPLE:  return pk_push(k, pv_tuple(A));
    case PKL_TUPLE:        return pk_op_tuple(k);
    case PKL_TUPLE1:       return pk_op_tuple_n(k, 1);
    case PKL_TUPLE2:       return pk_op_tuple_n(k, 2);
    case PKL_TUPLE3:       return pk_op_tuple_n(k, 3);
    case PKL_EMPTY_DICT:   return pk_push(k, pv_dict(A));
    case PKL_EMPTY_LIST:   return pk_push(k, pv_list(A));
    case PKL_SETITEM:      return pk_op_setitem(k);
    case PKL_SETITEMS:     return pk_op_setitems(k);
    case PKL_APPEND:       return pk_op_append(k);
    case PKL_APPENDS:      return pk_op_appends(k);
    case PKL_NONE:         return pk_push(k, pv_none(A));
    case PKL_NEWTRUE:      return pk_push(k, pv_bool(A, 1));
    case PKL_NEWFALSE:     return pk_push(k, pv_bool(A, 0));
    case PKL_BININT1:      return pk_op_int(k, 1, 0);
    case PKL_BININT2:      return pk_op_int(k, 2, 0);
    case PKL_BININT:       return pk_op_int(k, 4, 1);
    case PKL_LONG1:        return pk_op_long1(k);
    case PKL_BINFLOAT:     return pk_op_binfloat(k);
    case PKL_BINUNICODE:   return pk_op_binunicode(k);
    case PKL_BINPUT:       return pk_op_put(k, 1);
    case PKL_LONG_BINPUT:  return pk_op_put(k, 4);
    case PKL_BINGET:       return pk_op_get(k, 1);
    case PKL_LONG_BINGET:  return pk_op_get(k, 4);
    default: return pk_fail(k, MG_EPARSE, "unsupported opcode 0x%02x", op);
    }
}

static int pk_run(pk_vm *k, pv **out)
{
    for (;;) {
        k->op_at = k->pos;
        if (k->pos >= k->n) return pk_fail(k, MG_EPARSE, "truncated (no STOP)");
        int rc = pk_step(k, k->p[k->pos++]);
        if (rc == PK_STOPPED) {
            *out = k->result;
            return 0;
        }
        if (rc) return rc;
    }
}

int pk_read(zr_ctx *z, const zr_entry *pkl, pv **out)
{
    pk_vm k = {.z = z, .p = z->buf + pkl->off, .n = pkl->size};
    int rc = pk_run(&k, out);
    free(k.stack);
    free(k.marks);
    free(k.memo);
    return rc;
}
