/* SPDX-License-Identifier: MIT */
/*
 * pth_read.c: reads torch.save zip files (ours and PyTorch's) into a pyval
 * tree (research/pytorch-interop.md section b).
 *
 * Zip side: EOCD (zip64 when flagged), central directory (sizes, CRC and
 * offsets come from there: torch writes zeros in its local headers), the
 * local header only for the payload start. Entries must be stored and sit
 * in one folder; the CRC of every entry that is used is checked.
 *
 * Pickle side: a stack machine with the opcodes torch.save's protocol 2
 * output uses, a memo of node pointers, and REDUCE only for OrderedDict and
 * the tensor/parameter rebuild functions; every other GLOBAL is refused when
 * it is read, so nothing outside the allowlist is ever "called". All input
 * is untrusted: every read is bounds-checked, sizes are overflow-checked,
 * pops never cross a MARK, and the tree stays acyclic and at most
 * PV_MAX_DEPTH deep (pyval.c). pth_load opens only a regular file, and
 * without blocking (fileio.c): a FIFO or a folder is refused, not waited on.
 * It does not byte-swap big-endian files, convert dtypes, or materialise
 * non-contiguous views.
 */
#include "pth.h"

#include "fileio.h"

#include "memguard.h"
#include "pickle_op.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

typedef struct pr_entry {
    const char *name;    /* points into the file buffer, not NUL-terminated */
    size_t nlen;
    uint64_t off, size;  /* payload */
    uint32_t crc;
    int crc_ok;          /* checked already */
    const void *aligned; /* copy for a payload at a misaligned address */
} pr_entry;

typedef struct pr_ctx {
    const unsigned char *buf;
    uint64_t len;
    pv_arena *arena;
    pr_entry *ents;
    uint64_t nents;
    const char *prefix;  /* "<archive>/" of the first entry, in the buffer */
    size_t plen;
    char *err;
    size_t err_len;
} pr_ctx;

static int pr_fail(pr_ctx *c, int rc, const char *fmt, ...)
{
    if (c->err && c->err_len && !c->err[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->err_len, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static uint16_t rd16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const unsigned char *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

/* off + n <= len without overflow */
static int pr_in(const pr_ctx *c, uint64_t off, uint64_t n)
{
    return off <= c->len && n <= c->len - off;
}

/* ---- zip -------------------------------------------------------------- */

static int pr_ent_cmp(const void *a, const void *b)
{
    const pr_entry *x = a, *y = b;
    size_t n = x->nlen < y->nlen ? x->nlen : y->nlen;
    int r = memcmp(x->name, y->name, n);
    if (r) return r;
    return x->nlen < y->nlen ? -1 : x->nlen > y->nlen;
}

/* The entry "<prefix><rel>", or NULL. */
static pr_entry *pr_find(pr_ctx *c, const char *rel, size_t rlen)
{
    char name[512];
    if (c->plen + rlen > sizeof name) return NULL;
    memcpy(name, c->prefix, c->plen);
    memcpy(name + c->plen, rel, rlen);
    pr_entry key = {.name = name, .nlen = c->plen + rlen};
    return bsearch(&key, c->ents, (size_t)c->nents, sizeof *c->ents, pr_ent_cmp);
}

static int pr_check_crc(pr_ctx *c, pr_entry *e)
{
    if (e->crc_ok) return 0;
    uint32_t crc = (uint32_t)crc32(0L, Z_NULL, 0);
    const unsigned char *p = c->buf + e->off;
    for (uint64_t left = e->size; left > 0;) {
        uInt n = left > (1u << 30) ? (1u << 30) : (uInt)left;
        crc = (uint32_t)crc32(crc, p, n);
        p += n;
        left -= n;
    }
    if (crc != e->crc)
        return pr_fail(c, MG_EPARSE, "zip: %.*s: CRC-32 mismatch (0x%08x, directory says 0x%08x)",
                       (int)e->nlen, e->name, crc, e->crc);
    e->crc_ok = 1;
    return 0;
}

static int pr_zip(pr_ctx *c)
{
    const unsigned char *b = c->buf;
    if (c->len < 22 || rd32(b) != 0x04034B50)
        return pr_fail(c, MG_EPARSE, "zip: not a zip file (no local header signature at offset 0)");
    /* EOCD: torch writes no comment, but allow one (at most 64 KiB) */
    uint64_t eocd = c->len - 22, lo = c->len > 22 + 65535 ? c->len - 22 - 65535 : 0;
    for (;; eocd--) {
        if (rd32(b + eocd) == 0x06054B50 && eocd + 22 + rd16(b + eocd + 20) <= c->len) break;
        if (eocd == lo) return pr_fail(c, MG_EPARSE, "zip: no end of central directory record");
    }
    uint64_t n = rd16(b + eocd + 10), cd_size = rd32(b + eocd + 12), cd_off = rd32(b + eocd + 16);
    if (n == 0xFFFF || cd_size == 0xFFFFFFFF || cd_off == 0xFFFFFFFF) {
        if (eocd < 20 || rd32(b + eocd - 20) != 0x07064B50)
            return pr_fail(c, MG_EPARSE, "zip: zip64 end locator missing");
        uint64_t z = rd64(b + eocd - 20 + 8);
        if (!pr_in(c, z, 56) || rd32(b + z) != 0x06064B50)
            return pr_fail(c, MG_EPARSE, "zip: bad zip64 end record offset %llu",
                           (unsigned long long)z);
        n = rd64(b + z + 32);
        cd_size = rd64(b + z + 40);
        cd_off = rd64(b + z + 48);
    }
    if (!pr_in(c, cd_off, cd_size))
        return pr_fail(c, MG_EPARSE, "zip: central directory (%llu bytes at %llu) is past the end",
                       (unsigned long long)cd_size, (unsigned long long)cd_off);
    if (n == 0 || n > cd_size / 46)
        return pr_fail(c, MG_EPARSE, "zip: %llu entries cannot fit a %llu-byte directory",
                       (unsigned long long)n, (unsigned long long)cd_size);
    c->ents = pv_arena_alloc(c->arena, (size_t)n * sizeof *c->ents);
    if (!c->ents) return pr_fail(c, MG_ENOMEM, "zip: out of memory for %llu entries",
                                 (unsigned long long)n);
    uint64_t p = cd_off, end = cd_off + cd_size;
    for (uint64_t i = 0; i < n; i++) {
        if (end - p < 46 || rd32(b + p) != 0x02014B50)
            return pr_fail(c, MG_EPARSE, "zip: bad central directory entry %llu at offset %llu",
                           (unsigned long long)i, (unsigned long long)p);
        unsigned flags = rd16(b + p + 8), method = rd16(b + p + 10);
        uint32_t crc = rd32(b + p + 16);
        uint64_t csize = rd32(b + p + 20), usize = rd32(b + p + 24), lho = rd32(b + p + 42);
        unsigned nlen = rd16(b + p + 28), xlen = rd16(b + p + 30), clen = rd16(b + p + 32);
        if (end - p - 46 < (uint64_t)nlen + xlen + clen)
            return pr_fail(c, MG_EPARSE, "zip: central directory entry %llu is truncated",
                           (unsigned long long)i);
        const char *name = (const char *)b + p + 46;
        if (method != 0)
            return pr_fail(c, MG_EPARSE, "zip: %.*s is compressed (method %u); only stored "
                           "entries are supported", (int)nlen, name, method);
        if (flags & 1)
            return pr_fail(c, MG_EPARSE, "zip: %.*s is encrypted", (int)nlen, name);
        /* zip64 extra: only the fields that are 0xFFFFFFFF, in this order */
        const unsigned char *x = b + p + 46 + nlen;
        for (unsigned q = 0; q + 4 <= xlen;) {
            unsigned id = rd16(x + q), hl = rd16(x + q + 2);
            if (q + 4 + hl > xlen) break;
            if (id == 0x0001) {
                unsigned r = q + 4;
                if (usize == 0xFFFFFFFF) {
                    if (r + 8 > q + 4 + hl) goto bad64;
                    usize = rd64(x + r);
                    r += 8;
                }
                if (csize == 0xFFFFFFFF) {
                    if (r + 8 > q + 4 + hl) goto bad64;
                    csize = rd64(x + r);
                    r += 8;
                }
                if (lho == 0xFFFFFFFF) {
                    if (r + 8 > q + 4 + hl) goto bad64;
                    lho = rd64(x + r);
                }
            }
            q += 4 + hl;
        }
        if (usize != csize)
            return pr_fail(c, MG_EPARSE, "zip: %.*s: sizes differ (%llu vs %llu) in a stored entry",
                           (int)nlen, name, (unsigned long long)csize, (unsigned long long)usize);
        if (!pr_in(c, lho, 30) || rd32(b + lho) != 0x04034B50)
            return pr_fail(c, MG_EPARSE, "zip: %.*s: bad local header at offset %llu",
                           (int)nlen, name, (unsigned long long)lho);
        uint64_t start = lho + 30 + rd16(b + lho + 26) + rd16(b + lho + 28);
        if (!pr_in(c, start, csize))
            return pr_fail(c, MG_EPARSE, "zip: %.*s: %llu bytes at offset %llu run past the end "
                           "of the file (%llu bytes)", (int)nlen, name, (unsigned long long)csize,
                           (unsigned long long)start, (unsigned long long)c->len);
        if (i == 0) {
            const char *slash = memchr(name, '/', nlen);
            if (!slash || slash == name)
                return pr_fail(c, MG_EPARSE, "zip: first entry '%.*s' is not in a folder",
                               (int)nlen, name);
            c->prefix = name;
            c->plen = (size_t)(slash - name) + 1;
        }
        if (nlen < c->plen || memcmp(name, c->prefix, c->plen) != 0)
            return pr_fail(c, MG_EPARSE, "zip: entry '%.*s' is not under '%.*s'", (int)nlen, name,
                           (int)c->plen, c->prefix);
        c->ents[i] = (pr_entry){name, nlen, start, csize, crc, 0, NULL};
        p += 46 + (uint64_t)nlen + xlen + clen;
        continue;
    bad64:
        return pr_fail(c, MG_EPARSE, "zip: %.*s: zip64 extra field too short", (int)nlen, name);
    }
    c->nents = n;
    qsort(c->ents, (size_t)n, sizeof *c->ents, pr_ent_cmp);
    for (uint64_t i = 1; i < n; i++)
        if (pr_ent_cmp(&c->ents[i - 1], &c->ents[i]) == 0)
            return pr_fail(c, MG_EPARSE, "zip: duplicate entry '%.*s'", (int)c->ents[i].nlen,
                           c->ents[i].name);
    pr_entry *v = pr_find(c, "version", 7);
    if (!v) v = pr_find(c, ".data/version", 13);
    if (!v) return pr_fail(c, MG_EPARSE, "zip: no '%.*sversion' record", (int)c->plen, c->prefix);
    int rc = pr_check_crc(c, v);
    if (rc) return rc;
    unsigned ver = 0;
    uint64_t k = 0;
    for (; k < v->size && k < 4 && c->buf[v->off + k] >= '0' && c->buf[v->off + k] <= '9'; k++)
        ver = ver * 10 + (unsigned)(c->buf[v->off + k] - '0');
    if (k == 0 || ver < 1 || ver > 10)
        return pr_fail(c, MG_EPARSE, "zip: version record is not a number in 1..10");
    return 0;
}

/* ---- pickle ----------------------------------------------------------- */

typedef struct pr_pk {
    pr_ctx *c;
    const unsigned char *p; /* data.pkl */
    uint64_t n, pos, op_at;
    pv **stack;
    size_t sp, scap;
    size_t *marks;          /* stack heights at each MARK */
    size_t nmarks, mcap;
    pv **memo;
    size_t memo_cap;
} pr_pk;

#define PK_FAIL(k, rc, ...) pk_fail_at(k, rc, __VA_ARGS__)

static int pk_fail_at(pr_pk *k, int rc, const char *fmt, ...)
{
    pr_ctx *c = k->c;
    if (c->err && c->err_len && !c->err[0]) {
        char msg[192];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        snprintf(c->err, c->err_len, "data.pkl: %s at offset %llu", msg,
                 (unsigned long long)k->op_at);
    }
    return rc;
}

static int pk_push(pr_pk *k, pv *v)
{
    if (!v) return PK_FAIL(k, MG_ENOMEM, "out of memory");
    if (k->sp == k->scap) {
        size_t cap = k->scap ? k->scap * 2 : 64;
        pv **s = realloc(k->stack, cap * sizeof *s);
        if (!s) return PK_FAIL(k, MG_ENOMEM, "out of memory");
        k->stack = s;
        k->scap = cap;
    }
    k->stack[k->sp++] = v;
    return 0;
}

static size_t pk_fence(const pr_pk *k)
{
    return k->nmarks ? k->marks[k->nmarks - 1] : 0;
}

/* Pops one value; never below the newest MARK (as CPython's unpickler). */
static pv *pk_pop(pr_pk *k)
{
    if (k->sp <= pk_fence(k)) return NULL;
    return k->stack[--k->sp];
}

static pv *pk_top(pr_pk *k)
{
    return k->sp > pk_fence(k) ? k->stack[k->sp - 1] : NULL;
}

static int pk_need(pr_pk *k, uint64_t n)
{
    if (n > k->n - k->pos) return PK_FAIL(k, MG_EPARSE, "truncated argument");
    return 0;
}

/* Items above the newest mark: [*first, sp); the mark is removed. */
static int pk_pop_mark(pr_pk *k, size_t *first)
{
    if (!k->nmarks) return PK_FAIL(k, MG_EPARSE, "no MARK on the stack");
    *first = k->marks[--k->nmarks];
    return 0;
}

static int pk_memo_put(pr_pk *k, uint64_t idx)
{
    pv *top = pk_top(k);
    if (!top) return PK_FAIL(k, MG_EPARSE, "BINPUT on an empty stack");
    /* a dense memo (torch's) never has more entries than half the pickle */
    if (idx > k->n) return PK_FAIL(k, MG_EPARSE, "memo index %llu out of range",
                                   (unsigned long long)idx);
    if (idx >= k->memo_cap) {
        size_t cap = k->memo_cap ? k->memo_cap : 64;
        while (cap <= idx) cap *= 2;
        pv **m = realloc(k->memo, cap * sizeof *m);
        if (!m) return PK_FAIL(k, MG_ENOMEM, "out of memory");
        memset(m + k->memo_cap, 0, (cap - k->memo_cap) * sizeof *m);
        k->memo = m;
        k->memo_cap = cap;
    }
    k->memo[idx] = top;
    return 0;
}

static int pk_memo_get(pr_pk *k, uint64_t idx)
{
    if (idx >= k->memo_cap || !k->memo[idx])
        return PK_FAIL(k, MG_EPARSE, "memo index %llu out of range", (unsigned long long)idx);
    return pk_push(k, k->memo[idx]);
}

static int pk_is_global(const pv *v, const char *mod, const char *name)
{
    return v && v->kind == PV_GLOBAL_ && strcmp(v->u.g.mod, mod) == 0 &&
           strcmp(v->u.g.name, name) == 0;
}

static int pk_storage_dtype(const char *name)
{
    for (int d = 0; d < PV_NDTYPE; d++)
        if (strcmp(pv_dtype_storage((pv_dtype)d), name) == 0) return d;
    return -1;
}

static int pk_global(pr_pk *k)
{
    const char *s = (const char *)k->p + k->pos;
    uint64_t left = k->n - k->pos;
    const char *nl1 = memchr(s, '\n', left < 256 ? (size_t)left : 256);
    if (!nl1) return PK_FAIL(k, MG_EPARSE, "GLOBAL without a newline-terminated module");
    size_t mlen = (size_t)(nl1 - s);
    left -= mlen + 1;
    const char *nm = nl1 + 1;
    const char *nl2 = memchr(nm, '\n', left < 256 ? (size_t)left : 256);
    if (!nl2) return PK_FAIL(k, MG_EPARSE, "GLOBAL without a newline-terminated name");
    size_t nlen = (size_t)(nl2 - nm);
    k->pos += mlen + nlen + 2;
    char mod[256], name[256];
    memcpy(mod, s, mlen);
    mod[mlen] = '\0';
    memcpy(name, nm, nlen);
    name[nlen] = '\0';
    /* the allowlist: nothing else is ever pushed, so nothing else can be
     * reduced */
    int ok = (strcmp(mod, "collections") == 0 && strcmp(name, "OrderedDict") == 0) ||
             (strcmp(mod, "torch._utils") == 0 &&
              (strcmp(name, "_rebuild_tensor_v2") == 0 || strcmp(name, "_rebuild_parameter") == 0 ||
               strcmp(name, "_rebuild_parameter_with_state") == 0)) ||
             (strcmp(mod, "torch") == 0 && pk_storage_dtype(name) >= 0);
    if (!ok) {
        /* keep the message printable whatever the bytes were */
        for (char *q = mod; *q; q++) if (*q < 0x20 || *q > 0x7E) *q = '?';
        for (char *q = name; *q; q++) if (*q < 0x20 || *q > 0x7E) *q = '?';
        return PK_FAIL(k, MG_EPARSE, "global %s.%s is not allowed", mod, name);
    }
    pv *g = pv__node(k->c->arena, PV_GLOBAL_);
    if (!g) return PK_FAIL(k, MG_ENOMEM, "out of memory");
    pv *ms = pv_str(k->c->arena, mod), *ns = pv_str(k->c->arena, name);
    if (!ms || !ns) return PK_FAIL(k, MG_ENOMEM, "out of memory");
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

/* ('storage', torch.XStorage, key, location, numel) -> a storage node */
static int pk_persid(pr_pk *k)
{
    pv *pid = pk_pop(k);
    if (!pid || pid->kind != PV_TUPLE || pid->u.c.n != 5 ||
        !pv_as_str(pid->u.c.items[0]) || strcmp(pv_as_str(pid->u.c.items[0]), "storage") != 0 ||
        pid->u.c.items[1]->kind != PV_GLOBAL_ || strcmp(pid->u.c.items[1]->u.g.mod, "torch") != 0 ||
        pid->u.c.items[2]->kind != PV_STR)
        return PK_FAIL(k, MG_EPARSE, "BINPERSID needs ('storage', torch.<X>Storage, key, "
                       "location, numel)");
    int dt = pk_storage_dtype(pid->u.c.items[1]->u.g.name);
    int64_t numel;
    if (dt < 0 || pk_int_of(pid->u.c.items[4], &numel) || numel < 0)
        return PK_FAIL(k, MG_EPARSE, "bad storage type or element count");
    const pv *key = pid->u.c.items[2];
    char rel[160];
    if (key->u.str.len > 128) return PK_FAIL(k, MG_EPARSE, "storage key too long");
    int rl = snprintf(rel, sizeof rel, "data/%s", key->u.str.s);
    pr_entry *e = pr_find(k->c, rel, (size_t)rl);
    if (!e) return PK_FAIL(k, MG_EPARSE, "storage '%s' has no zip entry", rel);
    size_t isz = pv_dtype_size((pv_dtype)dt);
    if ((uint64_t)numel > UINT64_MAX / isz || (uint64_t)numel * isz != e->size)
        return PK_FAIL(k, MG_EPARSE, "storage '%s' holds %llu bytes, expected %lld x %zu", rel,
                       (unsigned long long)e->size, (long long)numel, isz);
    int rc = pr_check_crc(k->c, e);
    if (rc) return rc;
    const void *data = k->c->buf + e->off;
    if ((uintptr_t)data % isz) {
        /* an int64 or float at an odd address is undefined behaviour for
         * the caller: copy such (never torch-written) storages once */
        if (!e->aligned) {
            void *copy = pv_arena_alloc(k->c->arena, (size_t)e->size);
            if (!copy) return PK_FAIL(k, MG_ENOMEM, "out of memory for storage '%s'", rel);
            memcpy(copy, data, (size_t)e->size);
            e->aligned = copy;
        }
        data = e->aligned;
    }
    pv *st = pv__node(k->c->arena, PV_STORAGE_);
    if (!st) return PK_FAIL(k, MG_ENOMEM, "out of memory");
    st->u.st.dtype = (pv_dtype)dt;
    st->u.st.data = data;
    st->u.st.numel = numel;
    return pk_push(k, st);
}

/* _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]) */
static int pk_rebuild_tensor(pr_pk *k, const pv *args)
{
    if (args->u.c.n < 4 || args->u.c.n > 7)
        return PK_FAIL(k, MG_EPARSE, "_rebuild_tensor_v2 takes 6 or 7 arguments, got %zu",
                       args->u.c.n);
    pv *const *a = args->u.c.items;
    int64_t off;
    if (a[0]->kind != PV_STORAGE_ || pk_int_of(a[1], &off) || off < 0 ||
        a[2]->kind != PV_TUPLE || a[3]->kind != PV_TUPLE)
        return PK_FAIL(k, MG_EPARSE, "_rebuild_tensor_v2: bad storage, offset, size or stride");
    size_t nd = a[2]->u.c.n;
    if (nd > PV_MAX_DIM) return PK_FAIL(k, MG_EPARSE, "tensor of rank %zu (max %d)", nd, PV_MAX_DIM);
    if (a[3]->u.c.n != nd) return PK_FAIL(k, MG_EPARSE, "size and stride ranks differ");
    int64_t shape[PV_MAX_DIM], stride[PV_MAX_DIM], numel = 1;
    for (size_t i = 0; i < nd; i++) {
        if (pk_int_of(a[2]->u.c.items[i], &shape[i]) || shape[i] < 0 ||
            pk_int_of(a[3]->u.c.items[i], &stride[i]))
            return PK_FAIL(k, MG_EPARSE, "tensor size/stride entries must be ints >= 0");
        if (shape[i] && numel > INT64_MAX / shape[i])
            return PK_FAIL(k, MG_EPARSE, "tensor element count overflows");
        numel *= shape[i];
    }
    if (numel > 0) {
        int64_t want = 1;
        for (size_t i = nd; i-- > 0;) {
            if (shape[i] != 1 && stride[i] != want)
                return PK_FAIL(k, MG_EPARSE, "non-contiguous tensor (dim %zu has stride %lld, "
                               "expected %lld); save it .contiguous()", i,
                               (long long)stride[i], (long long)want);
            want *= shape[i];
        }
    }
    const pv *st = a[0];
    if (off > st->u.st.numel || numel > st->u.st.numel - off)
        return PK_FAIL(k, MG_EPARSE, "tensor of %lld elements at offset %lld overruns its "
                       "storage of %lld", (long long)numel, (long long)off,
                       (long long)st->u.st.numel);
    const unsigned char *data = st->u.st.data;
    data += (size_t)off * pv_dtype_size(st->u.st.dtype);
    return pk_push(k, pv_tensor_new(k->c->arena, st->u.st.dtype, (int)nd, shape, data));
}

static int pk_reduce(pr_pk *k)
{
    pv *args = pk_pop(k), *f = pk_pop(k);
    if (!args || !f || args->kind != PV_TUPLE || f->kind != PV_GLOBAL_)
        return PK_FAIL(k, MG_EPARSE, "REDUCE needs a global and an argument tuple");
    if (pk_is_global(f, "collections", "OrderedDict")) {
        if (args->u.c.n != 0) return PK_FAIL(k, MG_EPARSE, "OrderedDict() with arguments");
        return pk_push(k, pv_odict(k->c->arena));
    }
    if (pk_is_global(f, "torch._utils", "_rebuild_tensor_v2")) return pk_rebuild_tensor(k, args);
    if (pk_is_global(f, "torch._utils", "_rebuild_parameter") ||
        pk_is_global(f, "torch._utils", "_rebuild_parameter_with_state")) {
        if (args->u.c.n < 1 || args->u.c.items[0]->kind != PV_TENSOR)
            return PK_FAIL(k, MG_EPARSE, "_rebuild_parameter without a tensor");
        return pk_push(k, args->u.c.items[0]);
    }
    return PK_FAIL(k, MG_EPARSE, "REDUCE of %s.%s is not allowed", f->u.g.mod, f->u.g.name);
}

static int pk_tuple_from(pr_pk *k, size_t first)
{
    pv *t = pv_tuple(k->c->arena);
    if (!t) return PK_FAIL(k, MG_ENOMEM, "out of memory");
    for (size_t i = first; i < k->sp; i++) {
        int rc = pv_append(t, k->stack[i]);
        if (rc == MG_ENOMEM) return PK_FAIL(k, rc, "out of memory");
        if (rc) return PK_FAIL(k, MG_EPARSE, "object shared, cyclic or nested deeper than %d",
                               PV_MAX_DEPTH);
    }
    k->sp = first;
    return pk_push(k, t);
}

static int pk_edit_rc(pr_pk *k, int rc, const char *what)
{
    if (rc == 0) return 0;
    if (rc == MG_ENOMEM) return PK_FAIL(k, rc, "out of memory");
    return PK_FAIL(k, MG_EPARSE, "%s: wrong target, key not str/int, or an object that is "
                   "shared, cyclic or nested deeper than %d", what, PV_MAX_DEPTH);
}

static int pk_run(pr_pk *k, pv **out)
{
    pv_arena *A = k->c->arena;
    for (;;) {
        k->op_at = k->pos;
        if (k->pos >= k->n) return PK_FAIL(k, MG_EPARSE, "truncated (no STOP)");
        unsigned op = k->p[k->pos++];
        const unsigned char *arg = k->p + k->pos;
        int rc = 0;
        size_t first = 0;
        switch (op) {
        case PKL_PROTO:
            if ((rc = pk_need(k, 1))) return rc;
            if (arg[0] > 2)
                return PK_FAIL(k, MG_EPARSE, "pickle protocol %u (torch.save writes 2)", arg[0]);
            k->pos += 1;
            break;
        case PKL_STOP: {
            pv *r = pk_pop(k);
            if (!r || k->nmarks) return PK_FAIL(k, MG_EPARSE, "STOP with %s",
                                                r ? "an open MARK" : "an empty stack");
            if (pv__internal(r))
                return PK_FAIL(k, MG_EPARSE, "result holds a bare global or storage");
            *out = r;
            return 0;
        }
        case PKL_MARK:
            if (k->nmarks == k->mcap) {
                size_t cap = k->mcap ? k->mcap * 2 : 32;
                size_t *m = realloc(k->marks, cap * sizeof *m);
                if (!m) return PK_FAIL(k, MG_ENOMEM, "out of memory");
                k->marks = m;
                k->mcap = cap;
            }
            k->marks[k->nmarks++] = k->sp;
            break;
        case PKL_GLOBAL: rc = pk_global(k); break;
        case PKL_REDUCE: rc = pk_reduce(k); break;
        case PKL_BINPERSID: rc = pk_persid(k); break;
        case PKL_BUILD: { /* only an OrderedDict's _metadata, dropped */
            pv *state = pk_pop(k), *inst = pk_top(k);
            if (!state || !inst || inst->kind != PV_ODICT)
                return PK_FAIL(k, MG_EPARSE, "BUILD on something other than an OrderedDict");
            break;
        }
        case PKL_EMPTY_TUPLE: rc = pk_push(k, pv_tuple(A)); break;
        case PKL_TUPLE:
            if ((rc = pk_pop_mark(k, &first))) return rc;
            rc = pk_tuple_from(k, first);
            break;
        case PKL_TUPLE1: case PKL_TUPLE2: case PKL_TUPLE3: {
            size_t n = op - PKL_TUPLE1 + 1u;
            if (k->sp < pk_fence(k) + n) return PK_FAIL(k, MG_EPARSE, "TUPLE%zu on a short stack", n);
            rc = pk_tuple_from(k, k->sp - n);
            break;
        }
        case PKL_EMPTY_DICT: rc = pk_push(k, pv_dict(A)); break;
        case PKL_EMPTY_LIST: rc = pk_push(k, pv_list(A)); break;
        case PKL_SETITEM: {
            pv *v = pk_pop(k), *key = pk_pop(k), *d = pk_top(k);
            if (!v || !key || !d) return PK_FAIL(k, MG_EPARSE, "SETITEM on a short stack");
            rc = pk_edit_rc(k, pv__dict_push(d, key, v), "SETITEM");
            break;
        }
        case PKL_SETITEMS: {
            if ((rc = pk_pop_mark(k, &first))) return rc;
            pv *d = first > pk_fence(k) ? k->stack[first - 1] : NULL;
            if (!d || (k->sp - first) % 2) return PK_FAIL(k, MG_EPARSE, "SETITEMS needs a dict "
                                                          "and key/value pairs");
            for (size_t i = first; i < k->sp && !rc; i += 2)
                rc = pk_edit_rc(k, pv__dict_push(d, k->stack[i], k->stack[i + 1]), "SETITEMS");
            k->sp = first;
            break;
        }
        case PKL_APPEND: {
            pv *v = pk_pop(k), *l = pk_top(k);
            if (!v || !l || l->kind != PV_LIST) return PK_FAIL(k, MG_EPARSE, "APPEND needs a list");
            rc = pk_edit_rc(k, pv_append(l, v), "APPEND");
            break;
        }
        case PKL_APPENDS: {
            if ((rc = pk_pop_mark(k, &first))) return rc;
            pv *l = first > pk_fence(k) ? k->stack[first - 1] : NULL;
            if (!l || l->kind != PV_LIST) return PK_FAIL(k, MG_EPARSE, "APPENDS needs a list");
            for (size_t i = first; i < k->sp && !rc; i++)
                rc = pk_edit_rc(k, pv_append(l, k->stack[i]), "APPENDS");
            k->sp = first;
            break;
        }
        case PKL_NONE: rc = pk_push(k, pv_none(A)); break;
        case PKL_NEWTRUE: rc = pk_push(k, pv_bool(A, 1)); break;
        case PKL_NEWFALSE: rc = pk_push(k, pv_bool(A, 0)); break;
        case PKL_BININT1:
            if ((rc = pk_need(k, 1))) return rc;
            k->pos += 1;
            rc = pk_push(k, pv_int(A, arg[0]));
            break;
        case PKL_BININT2:
            if ((rc = pk_need(k, 2))) return rc;
            k->pos += 2;
            rc = pk_push(k, pv_int(A, rd16(arg)));
            break;
        case PKL_BININT:
            if ((rc = pk_need(k, 4))) return rc;
            k->pos += 4;
            rc = pk_push(k, pv_int(A, (int32_t)rd32(arg)));
            break;
        case PKL_LONG1: {
            if ((rc = pk_need(k, 1))) return rc;
            unsigned n = arg[0];
            if ((rc = pk_need(k, 1 + (uint64_t)n))) return rc;
            if (n > 8) return PK_FAIL(k, MG_EPARSE, "int of %u bytes does not fit int64", n);
            uint64_t u = 0;
            for (unsigned i = 0; i < n; i++) u |= (uint64_t)arg[1 + i] << (8 * i);
            if (n > 0 && n < 8 && (arg[n] & 0x80)) u |= ~(uint64_t)0 << (8 * n); /* sign */
            k->pos += 1 + n;
            int64_t v;
            memcpy(&v, &u, 8);
            rc = pk_push(k, pv_int(A, v));
            break;
        }
        case PKL_BINFLOAT: { /* big-endian */
            if ((rc = pk_need(k, 8))) return rc;
            uint64_t u = 0;
            for (int i = 0; i < 8; i++) u = u << 8 | arg[i];
            double d;
            memcpy(&d, &u, 8);
            k->pos += 8;
            rc = pk_push(k, pv_float(A, d));
            break;
        }
        case PKL_BINUNICODE: {
            if ((rc = pk_need(k, 4))) return rc;
            uint32_t n = rd32(arg);
            if ((rc = pk_need(k, 4 + (uint64_t)n))) return rc;
            k->pos += 4 + (uint64_t)n;
            rc = pk_push(k, pv_strn(A, (const char *)arg + 4, n));
            break;
        }
        case PKL_BINPUT:
            if ((rc = pk_need(k, 1))) return rc;
            k->pos += 1;
            rc = pk_memo_put(k, arg[0]);
            break;
        case PKL_LONG_BINPUT:
            if ((rc = pk_need(k, 4))) return rc;
            k->pos += 4;
            rc = pk_memo_put(k, rd32(arg));
            break;
        case PKL_BINGET:
            if ((rc = pk_need(k, 1))) return rc;
            k->pos += 1;
            rc = pk_memo_get(k, arg[0]);
            break;
        case PKL_LONG_BINGET:
            if ((rc = pk_need(k, 4))) return rc;
            k->pos += 4;
            rc = pk_memo_get(k, rd32(arg));
            break;
        default:
            return PK_FAIL(k, MG_EPARSE, "unsupported opcode 0x%02x", op);
        }
        if (rc) return rc;
    }
}

static int pr_load(pr_ctx *c, pv **out_root)
{
    int rc = pr_zip(c);
    if (rc) return rc;
    pr_entry *pe = pr_find(c, "data.pkl", 8);
    if (!pe) return pr_fail(c, MG_EPARSE, "zip: no '%.*sdata.pkl' record", (int)c->plen, c->prefix);
    if ((rc = pr_check_crc(c, pe))) return rc;
    pr_pk k = {.c = c, .p = c->buf + pe->off, .n = pe->size};
    rc = pk_run(&k, out_root);
    free(k.stack);
    free(k.marks);
    free(k.memo);
    return rc;
}

int pth_load_mem(const void *buf, size_t len, pv_arena **out_arena, pv **out_root,
                 char *err, size_t err_len)
{
    if (err && err_len) err[0] = '\0';
    if (out_arena) *out_arena = NULL;
    if (out_root) *out_root = NULL;
    if (!buf || !out_arena || !out_root) {
        if (err && err_len) snprintf(err, err_len, "pth_load: NULL argument");
        return MG_EINVAL;
    }
    pr_ctx c = {.buf = buf, .len = len, .err = err, .err_len = err_len};
    c.arena = pv_arena_new();
    if (!c.arena) return pr_fail(&c, MG_ENOMEM, "pth_load: out of memory");
    pv *root = NULL;
    int rc = pr_load(&c, &root);
    if (rc) {
        pv_arena_free(c.arena);
        return rc;
    }
    *out_arena = c.arena;
    *out_root = root;
    return 0;
}

int pth_load(const char *path, pv_arena **out_arena, pv **out_root, char *err, size_t err_len)
{
    if (err && err_len) err[0] = '\0';
    if (out_arena) *out_arena = NULL;
    if (out_root) *out_root = NULL;
    if (!path || !out_arena || !out_root) {
        if (err && err_len) snprintf(err, err_len, "pth_load: NULL argument");
        return MG_EINVAL;
    }
    /* Non-blocking and regular only: a FIFO or a folder is refused, not
     * waited on or read as empty. */
    int rc0;
    FILE *f = unet_fopen_regular(path, &rc0, err, err_len);
    if (!f) return rc0;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || sb.st_size < 0 || (uint64_t)sb.st_size > SIZE_MAX / 2) {
        fclose(f);
        if (err && err_len) snprintf(err, err_len, "%s: too large to read", path);
        return MG_EIO;
    }
    size_t len = (size_t)sb.st_size;
    pv_arena *a = pv_arena_new();
    unsigned char *buf = a ? pv_arena_alloc(a, len ? len : 1) : NULL;
    if (!buf) {
        fclose(f);
        pv_arena_free(a);
        if (err && err_len) snprintf(err, err_len, "%s: out of memory for %zu bytes", path, len);
        return MG_ENOMEM;
    }
    size_t got = fread(buf, 1, len, f);
    int rerr = ferror(f);
    fclose(f);
    if (got != len || rerr) {
        pv_arena_free(a);
        if (err && err_len) snprintf(err, err_len, "%s: short read (%zu of %zu bytes)", path, got, len);
        return MG_EIO;
    }
    pr_ctx c = {.buf = buf, .len = len, .arena = a, .err = err, .err_len = err_len};
    pv *root = NULL;
    int rc = pr_load(&c, &root);
    if (rc) {
        /* prefix the message with the file name: "<path>: data.pkl: ..." */
        if (err && err_len > 1) {
            char tmp[512];
            snprintf(tmp, sizeof tmp, "%s", err);
            snprintf(err, err_len, "%s: %s", path, tmp);
        }
        pv_arena_free(a);
        return rc;
    }
    *out_arena = a;
    *out_root = root;
    return 0;
}
