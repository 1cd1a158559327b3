/* SPDX-License-Identifier: MIT */
/*
 * pth_write.c: writes a pyval tree as a torch.save zip file (see pth.h and
 * research/pytorch-interop.md section a; the layout is byte for byte that of
 * ptckpt_ref.py, whose golden file the tests compare against).
 *
 * Two passes over the tree, both allocation-free: the pickle is emitted into
 * the caller's scratch buffer (a counting run of the same code sizes it),
 * then every tensor is streamed from the caller's pointer: one CRC-32 pass
 * (zlib) and one mg_atomic_write. The pickle uses no memo: each GLOBAL is
 * written again, which keeps the emitter stateless; both torch unpicklers
 * accept it. It does not compress, share storages between tensors, or
 * write tensor views (one storage per tensor, offset 0, row-major).
 */
#include "pth.h"

#include "memguard.h"
#include "pickle_op.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define PW_ALIGN 64           /* torch's kFieldAlignment */
#define PW_ENTRY 16           /* scratch bytes per zip entry: crc + lho */
#define PW_FIXED_ENTRIES 3    /* data.pkl, byteorder, version */
#define PW_MAX_NAME 256

static void pw_err(char *err, size_t n, const char *fmt, ...)
{
    if (!err || n == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
}

/* ---- pickle emitter --------------------------------------------------- */

typedef struct pw_pk {
    unsigned char *buf; /* NULL: count only */
    size_t cap, len;
    int bad;            /* invalid tree or size overflow */
    uint64_t nstor;     /* tensors emitted so far = next storage key */
} pw_pk;

static void pk_put(pw_pk *p, const void *b, size_t n)
{
    if (p->len > SIZE_MAX - n) {
        p->bad = 1;
        return;
    }
    if (p->buf && p->len + n <= p->cap) memcpy(p->buf + p->len, b, n);
    p->len += n;
}

static void pk_op(pw_pk *p, enum pickle_op op)
{
    unsigned char b = (unsigned char)op;
    pk_put(p, &b, 1);
}

static void pk_int(pw_pk *p, int64_t v)
{
    unsigned char b[10];
    if (v >= 0 && v <= 0xFF) {
        b[0] = PKL_BININT1;                       /* BININT1 */
        b[1] = (unsigned char)v;
        pk_put(p, b, 2);
    } else if (v >= 0 && v <= 0xFFFF) {
        b[0] = PKL_BININT2;                       /* BININT2 */
        b[1] = (unsigned char)(v & 0xFF);
        b[2] = (unsigned char)(v >> 8);
        pk_put(p, b, 3);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        uint32_t u = (uint32_t)(int32_t)v;
        b[0] = PKL_BININT;                       /* BININT, signed LE */
        for (int i = 0; i < 4; i++) b[1 + i] = (unsigned char)(u >> (8 * i));
        pk_put(p, b, 5);
    } else {
        /* LONG1: the fewest two's-complement bytes that hold v, as
         * Python's encode_long writes them */
        uint64_t u = (uint64_t)v;
        int n = 1;
        while (n < 8) {
            int64_t lo = -((int64_t)1 << (8 * n - 1)), hi = ((int64_t)1 << (8 * n - 1)) - 1;
            if (v >= lo && v <= hi) break;
            n++;
        }
        b[0] = PKL_LONG1;
        b[1] = (unsigned char)n;
        for (int i = 0; i < n; i++) b[2 + i] = (unsigned char)(u >> (8 * i));
        pk_put(p, b, (size_t)n + 2);
    }
}

static void pk_float(pw_pk *p, double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    unsigned char b[9];
    b[0] = PKL_BINFLOAT;                           /* BINFLOAT: big-endian */
    for (int i = 0; i < 8; i++) b[1 + i] = (unsigned char)(u >> (56 - 8 * i));
    pk_put(p, b, 9);
}

static void pk_str(pw_pk *p, const char *s, size_t len)
{
    if (len > UINT32_MAX) {
        p->bad = 1;
        return;
    }
    unsigned char b[5];
    b[0] = PKL_BINUNICODE;                           /* BINUNICODE: u32 LE length */
    for (int i = 0; i < 4; i++) b[1 + i] = (unsigned char)((uint32_t)len >> (8 * i));
    pk_put(p, b, 5);
    pk_put(p, s, len);
}

static void pk_cstr(pw_pk *p, const char *s)
{
    pk_str(p, s, strlen(s));
}

static void pk_global(pw_pk *p, const char *mod, const char *name)
{
    pk_op(p, PKL_GLOBAL);
    pk_put(p, mod, strlen(mod));
    pk_put(p, "\n", 1);
    pk_put(p, name, strlen(name));
    pk_put(p, "\n", 1);
}

static void pk_int_tuple(pw_pk *p, const int64_t *v, int n)
{
    if (n == 0) {
        pk_op(p, PKL_EMPTY_TUPLE);                    /* EMPTY_TUPLE */
        return;
    }
    if (n > 3) pk_op(p, PKL_MARK);
    for (int i = 0; i < n; i++) pk_int(p, v[i]);
    pk_op(p, n == 1 ? PKL_TUPLE1 : n == 2 ? PKL_TUPLE2 : n == 3 ? PKL_TUPLE3 : PKL_TUPLE);
}

static void pk_empty_odict(pw_pk *p)
{
    pk_global(p, "collections", "OrderedDict");
    pk_op(p, PKL_EMPTY_TUPLE);
    pk_op(p, PKL_REDUCE);
}

/* numel * itemsize of a tensor to write, or -1 when invalid/overflowing. */
static int64_t pw_tensor_bytes(const pv_tensor *t)
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
static void pk_tensor(pw_pk *p, const pv_tensor *t)
{
    int64_t nbytes = pw_tensor_bytes(t);
    if (nbytes < 0 || (nbytes > 0 && !t->data)) {
        p->bad = 1;
        return;
    }
    int64_t stride[PV_MAX_DIM], acc = 1;
    for (int i = t->ndim; i-- > 0;) {
        stride[i] = acc;
        acc *= t->shape[i];
    }
    char key[24];
    snprintf(key, sizeof key, "%llu", (unsigned long long)p->nstor++);
    pk_global(p, "torch._utils", "_rebuild_tensor_v2");
    pk_op(p, PKL_MARK);                        /* args tuple */
    pk_op(p, PKL_MARK);                        /* persistent id tuple */
    pk_cstr(p, "storage");
    pk_global(p, "torch", pv_dtype_storage(t->dtype));
    pk_cstr(p, key);                      /* zip entry data/<key> */
    pk_cstr(p, "cpu");
    pk_int(p, pv_numel(t));               /* storage size in elements */
    pk_op(p, PKL_TUPLE);
    pk_op(p, PKL_BINPERSID);                        /* BINPERSID */
    pk_int(p, 0);                         /* storage offset */
    pk_int_tuple(p, t->shape, t->ndim);
    pk_int_tuple(p, stride, t->ndim);
    pk_op(p, PKL_NEWFALSE);                       /* requires_grad = False */
    pk_empty_odict(p);                    /* backward_hooks */
    pk_op(p, PKL_TUPLE);
    pk_op(p, PKL_REDUCE);
}

static void pk_value(pw_pk *p, const pv *v, int depth)
{
    if (!v || depth > PV_MAX_DEPTH + 1 || p->bad) {
        p->bad = 1;
        return;
    }
    switch (v->kind) {
    case PV_NONE: pk_op(p, PKL_NONE); break;
    case PV_BOOL: pk_op(p, v->u.b ? PKL_NEWTRUE : PKL_NEWFALSE); break;
    case PV_INT: pk_int(p, v->u.i); break;
    case PV_FLOAT: pk_float(p, v->u.f); break;
    case PV_STR: pk_str(p, v->u.str.s, v->u.str.len); break;
    case PV_TENSOR: pk_tensor(p, &v->u.t); break;
    case PV_TUPLE: {
        size_t n = v->u.c.n;
        if (n == 0) {
            pk_op(p, PKL_EMPTY_TUPLE);
            break;
        }
        if (n > 3) pk_op(p, PKL_MARK);
        for (size_t i = 0; i < n; i++) pk_value(p, v->u.c.items[i], depth + 1);
        pk_op(p, n == 1 ? PKL_TUPLE1 : n == 2 ? PKL_TUPLE2 : n == 3 ? PKL_TUPLE3 : PKL_TUPLE);
        break;
    }
    case PV_LIST:
        pk_op(p, PKL_EMPTY_LIST);
        if (v->u.c.n) {
            pk_op(p, PKL_MARK);
            for (size_t i = 0; i < v->u.c.n; i++) pk_value(p, v->u.c.items[i], depth + 1);
            pk_op(p, PKL_APPENDS);                /* APPENDS */
        }
        break;
    case PV_DICT: case PV_ODICT:
        if (v->kind == PV_ODICT) pk_empty_odict(p);
        else pk_op(p, PKL_EMPTY_DICT);
        if (v->u.c.n) {
            pk_op(p, PKL_MARK);
            for (size_t i = 0; i < v->u.c.n; i++) {
                const pv *k = v->u.c.items[i];
                if (!k || (k->kind != PV_STR && k->kind != PV_INT)) {
                    p->bad = 1;
                    return;
                }
                pk_value(p, k, depth + 1);
                pk_value(p, v->u.c.vals[i], depth + 1);
            }
            pk_op(p, PKL_SETITEMS);                /* SETITEMS */
        }
        break;
    default: p->bad = 1; break;           /* reader-internal kinds */
    }
}

static int pw_archive_ok(const char *a)
{
    size_t n = strlen(a);
    return n > 0 && n <= 128 && !strchr(a, '/') && !strchr(a, '\\');
}

static const char *pw_archive(const pth_save_opts *o)
{
    return o && o->archive ? o->archive : "archive";
}

/* Counts the pickle and the tensors; 0 when the tree is invalid. */
static size_t pw_count(const pv *root, uint64_t *ntensors)
{
    pw_pk p = {0};
    pk_op(&p, PKL_PROTO);
    pk_put(&p, "\x02", 1);          /* protocol 2, as torch.save */
    pk_value(&p, root, 0);
    pk_op(&p, PKL_STOP);
    *ntensors = p.nstor;
    return p.bad ? 0 : p.len;
}

static size_t pw_align8(size_t n)
{
    return (n + 7) / 8 * 8;
}

size_t pth_save_scratch(const pv *root, const pth_save_opts *opts)
{
    uint64_t nt;
    size_t pk = pw_count(root, &nt);
    if (pk == 0 || (opts && opts->archive && !pw_archive_ok(opts->archive))) return 0;
    if (nt > (SIZE_MAX - pw_align8(pk)) / PW_ENTRY - PW_FIXED_ENTRIES - 1) return 0;
    return pw_align8(pk) + (size_t)(nt + PW_FIXED_ENTRIES) * PW_ENTRY;
}

/* ---- zip writer ------------------------------------------------------- */

typedef struct pw_zip {
    mg_atomic at;
    uint64_t pos;          /* bytes written to the file so far */
    uint64_t fail_after;   /* test hook */
    int zip64;
    unsigned char hdr[1024]; /* one local header / CD record at a time */
    size_t hlen;
    const char *prefix;
    unsigned char *entries; /* scratch: PW_ENTRY bytes per entry */
    uint64_t nentries;
} pw_zip;

static int pw_write(pw_zip *z, const void *b, size_t n)
{
    if (z->fail_after && z->pos + n > z->fail_after) {
        size_t part = z->pos < z->fail_after ? (size_t)(z->fail_after - z->pos) : 0;
        if (part) mg_atomic_write(&z->at, b, part);
        return MG_EIO;
    }
    int rc = mg_atomic_write(&z->at, b, n);
    if (rc == 0) z->pos += n;
    return rc;
}

static void h16(pw_zip *z, unsigned v)
{
    z->hdr[z->hlen++] = (unsigned char)(v & 0xFF);
    z->hdr[z->hlen++] = (unsigned char)((v >> 8) & 0xFF);
}

static void h32(pw_zip *z, uint32_t v)
{
    for (int i = 0; i < 4; i++) z->hdr[z->hlen++] = (unsigned char)(v >> (8 * i));
}

static void h64(pw_zip *z, uint64_t v)
{
    for (int i = 0; i < 8; i++) z->hdr[z->hlen++] = (unsigned char)(v >> (8 * i));
}

static void hbytes(pw_zip *z, const void *b, size_t n)
{
    memcpy(z->hdr + z->hlen, b, n);
    z->hlen += n;
}

static size_t pw_name(const pw_zip *z, uint64_t idx, char *name, const char *rel)
{
    int n;
    if (rel) n = snprintf(name, PW_MAX_NAME, "%s/%s", z->prefix, rel);
    else n = snprintf(name, PW_MAX_NAME, "%s/data/%llu", z->prefix, (unsigned long long)idx);
    return n < 0 ? 0 : (size_t)n;
}

static void pw_entry_store(pw_zip *z, uint64_t idx, uint32_t crc, uint64_t lho)
{
    unsigned char *e = z->entries + idx * PW_ENTRY;
    memcpy(e, &crc, 4);
    memcpy(e + 8, &lho, 8);
}

/* Local header + FB padding so that the payload starts at a multiple of
 * 64, then the payload from `data` (caller memory, never copied). */
static int pw_add(pw_zip *z, const char *name, const void *data, uint64_t size)
{
    size_t nlen = strlen(name);
    uint32_t crc = (uint32_t)crc32(0L, Z_NULL, 0);
    const unsigned char *d = data;
    for (uint64_t left = size; left > 0;) {
        uInt chunk = left > (1u << 30) ? (1u << 30) : (uInt)left;
        crc = (uint32_t)crc32(crc, d, chunk);
        d += chunk;
        left -= chunk;
    }
    uint64_t lho = z->pos;
    unsigned z64 = z->zip64 ? 20 : 0;
    unsigned pad = (unsigned)((PW_ALIGN - (lho + 30 + nlen + z64 + 4) % PW_ALIGN) % PW_ALIGN);
    z->hlen = 0;
    h32(z, 0x04034B50);
    h16(z, z->zip64 ? 45 : 20);           /* version needed */
    h16(z, 0);                            /* flags: no data descriptor */
    h16(z, 0);                            /* stored */
    h16(z, 0);
    h16(z, 0);                            /* time, date */
    h32(z, crc);
    h32(z, z->zip64 ? 0xFFFFFFFFu : (uint32_t)size);
    h32(z, z->zip64 ? 0xFFFFFFFFu : (uint32_t)size);
    h16(z, (unsigned)nlen);
    h16(z, z64 + 4 + pad);
    hbytes(z, name, nlen);
    if (z->zip64) {
        h16(z, 0x0001);
        h16(z, 16);
        h64(z, size);
        h64(z, size);
    }
    h16(z, 0x4246);                       /* "FB": torch's padding field */
    h16(z, pad);
    memset(z->hdr + z->hlen, 'Z', pad);
    z->hlen += pad;
    int rc = pw_write(z, z->hdr, z->hlen);
    for (const unsigned char *p = data; rc == 0 && size > 0;) {
        size_t chunk = size > (1u << 30) ? (1u << 30) : (size_t)size;
        rc = pw_write(z, p, chunk);
        p += chunk;
        size -= chunk;
    }
    if (rc == 0) pw_entry_store(z, z->nentries++, crc, lho);
    return rc;
}

typedef struct pw_walk {
    pw_zip *z;
    int rc;
} pw_walk;

/* Streams tensors in the order pk_value numbered them. */
static void pw_tensors(pw_walk *w, const pv *v, int depth)
{
    if (w->rc || !v || depth > PV_MAX_DEPTH + 1) return;
    if (v->kind == PV_TENSOR) {
        char name[PW_MAX_NAME];
        pw_name(w->z, w->z->nentries - 2, name, NULL); /* entries: pkl, byteorder, data/0.. */
        w->rc = pw_add(w->z, name, v->u.t.data, (uint64_t)pw_tensor_bytes(&v->u.t));
        return;
    }
    if (v->kind < PV_LIST || v->kind > PV_ODICT) return;
    for (size_t i = 0; i < v->u.c.n && !w->rc; i++) {
        if (v->kind == PV_DICT || v->kind == PV_ODICT) pw_tensors(w, v->u.c.vals[i], depth + 1);
        else pw_tensors(w, v->u.c.items[i], depth + 1);
    }
}

static uint64_t pw_total_payload(const pv *v, int depth)
{
    if (!v || depth > PV_MAX_DEPTH + 1) return 0;
    if (v->kind == PV_TENSOR) return (uint64_t)pw_tensor_bytes(&v->u.t);
    if (v->kind < PV_LIST || v->kind > PV_ODICT) return 0;
    uint64_t s = 0;
    for (size_t i = 0; i < v->u.c.n; i++) {
        uint64_t x = pw_total_payload((v->kind == PV_DICT || v->kind == PV_ODICT)
                                          ? v->u.c.vals[i] : v->u.c.items[i], depth + 1);
        s = s > UINT64_MAX - x ? UINT64_MAX : s + x;
    }
    return s;
}

static int pw_central(pw_zip *z)
{
    uint64_t cd_start = z->pos;
    int rc = 0;
    for (uint64_t i = 0; i < z->nentries && rc == 0; i++) {
        char name[PW_MAX_NAME];
        /* file order: data.pkl, byteorder, data/0..N-1, version */
        if (i == 0) pw_name(z, 0, name, "data.pkl");
        else if (i == 1) pw_name(z, 0, name, "byteorder");
        else if (i == z->nentries - 1) pw_name(z, 0, name, "version");
        else pw_name(z, i - 2, name, NULL);
        size_t nlen = strlen(name);
        uint32_t crc;
        uint64_t lho, size;
        const unsigned char *e = z->entries + i * PW_ENTRY;
        memcpy(&crc, e, 4);
        memcpy(&lho, e + 8, 8);
        /* the size is what lies between this header's payload start and
         * the next header; recomputing it from the local header keeps the
         * scratch at 16 bytes per entry */
        uint64_t next = i + 1 < z->nentries ? 0 : cd_start;
        if (i + 1 < z->nentries) memcpy(&next, z->entries + (i + 1) * PW_ENTRY + 8, 8);
        unsigned z64 = z->zip64 ? 20 : 0;
        uint64_t start = lho + 30 + nlen + z64 + 4;
        start += (PW_ALIGN - start % PW_ALIGN) % PW_ALIGN;
        size = next - start;
        z->hlen = 0;
        h32(z, 0x02014B50);
        h16(z, z->zip64 ? 45 : 20);
        h16(z, z->zip64 ? 45 : 20);
        h16(z, 0);
        h16(z, 0);
        h16(z, 0);
        h16(z, 0);
        h32(z, crc);
        h32(z, z->zip64 ? 0xFFFFFFFFu : (uint32_t)size);
        h32(z, z->zip64 ? 0xFFFFFFFFu : (uint32_t)size);
        h16(z, (unsigned)nlen);
        h16(z, z->zip64 ? 28 : 0);        /* extra length */
        h16(z, 0);
        h16(z, 0);
        h16(z, 0);
        h32(z, 0);
        h32(z, z->zip64 ? 0xFFFFFFFFu : (uint32_t)lho);
        hbytes(z, name, nlen);
        if (z->zip64) {
            h16(z, 0x0001);
            h16(z, 24);
            h64(z, size);
            h64(z, size);
            h64(z, lho);
        }
        rc = pw_write(z, z->hdr, z->hlen);
    }
    if (rc) return rc;
    uint64_t cd_size = z->pos - cd_start, n = z->nentries;
    z->hlen = 0;
    if (z->zip64) {
        uint64_t eocd64 = z->pos;
        h32(z, 0x06064B50);
        h64(z, 44);
        h16(z, 45);
        h16(z, 45);
        h32(z, 0);
        h32(z, 0);
        h64(z, n);
        h64(z, n);
        h64(z, cd_size);
        h64(z, cd_start);
        h32(z, 0x07064B50);               /* zip64 end locator */
        h32(z, 0);
        h64(z, eocd64);
        h32(z, 1);
    }
    h32(z, 0x06054B50);
    h16(z, 0);
    h16(z, 0);
    h16(z, z->zip64 ? 0xFFFF : (unsigned)n);
    h16(z, z->zip64 ? 0xFFFF : (unsigned)n);
    h32(z, z->zip64 ? 0xFFFFFFFFu : (uint32_t)cd_size);
    h32(z, z->zip64 ? 0xFFFFFFFFu : (uint32_t)cd_start);
    h16(z, 0);
    return pw_write(z, z->hdr, z->hlen);
}

int pth_save(const char *path, const pv *root, void *scratch, size_t scratch_len,
             const pth_save_opts *opts, char *err, size_t err_len)
{
    if (err && err_len) err[0] = '\0';
    if (!path || !root) {
        pw_err(err, err_len, "pth_save: NULL path or tree");
        return MG_EINVAL;
    }
    const char *archive = pw_archive(opts);
    if (!pw_archive_ok(archive)) {
        pw_err(err, err_len, "pth_save: archive name \"%s\" must be 1-128 chars without '/'", archive);
        return MG_EINVAL;
    }
    uint64_t ntensors;
    size_t pklen = pw_count(root, &ntensors);
    size_t need = pth_save_scratch(root, opts);
    if (pklen == 0 || need == 0) {
        pw_err(err, err_len, "pth_save: invalid tree (internal node, bad dict key, bad tensor "
               "shape/dtype, NULL tensor data or size overflow)");
        return MG_EINVAL;
    }
    if (ntensors + PW_FIXED_ENTRIES > 0xFFFFFFFFull) {
        pw_err(err, err_len, "pth_save: %llu tensors is too many", (unsigned long long)ntensors);
        return MG_ERANGE;
    }
    void *own = NULL;
    if (!scratch) {
        scratch = own = malloc(need);
        if (!own) {
            pw_err(err, err_len, "pth_save: out of memory for %zu bytes of pickle", need);
            return MG_ENOMEM;
        }
    } else if (scratch_len < need || ((uintptr_t)scratch & 7u)) {
        pw_err(err, err_len, "pth_save: scratch buffer of %zu bytes, need %zu (8-byte aligned)",
               scratch_len, need);
        return MG_ENOBUFS;
    }
    pw_pk pk = {scratch, pklen, 0, 0, 0};
    pk_op(&pk, PKL_PROTO);
    pk_put(&pk, "\x02", 1);          /* protocol 2, as torch.save */
    pk_value(&pk, root, 0);
    pk_op(&pk, PKL_STOP);

    pw_zip z; /* ~9 KiB of stack: two paths and one header buffer */
    memset(&z, 0, sizeof z);
    z.fail_after = opts ? opts->fail_after : 0;
    z.prefix = archive;
    z.entries = (unsigned char *)scratch + pw_align8(pklen);
    uint64_t total = pw_total_payload(root, 0);
    z.zip64 = (opts && opts->force_zip64) || total >= 0xF0000000ull ||
              pklen >= 0xF0000000ull || ntensors + PW_FIXED_ENTRIES >= 0xFFFF ||
              (ntensors + PW_FIXED_ENTRIES) * 512 >= 0xF0000000ull - total;
    int rc = mg_atomic_open(&z.at, path);
    if (rc < 0) {
        pw_err(err, err_len, "pth_save: cannot create the temporary for %s: %s", path,
               mg_strerror(rc));
        free(own);
        return rc;
    }
    char name[PW_MAX_NAME];
    pw_name(&z, 0, name, "data.pkl");
    rc = pw_add(&z, name, scratch, pklen);
    if (rc == 0) {
        pw_name(&z, 0, name, "byteorder");
        rc = pw_add(&z, name, "little", 6);
    }
    if (rc == 0) {
        pw_walk w = {&z, 0};
        pw_tensors(&w, root, 0);
        rc = w.rc;
    }
    if (rc == 0) {
        pw_name(&z, 0, name, "version");
        rc = pw_add(&z, name, "3\n", 2);
    }
    if (rc == 0) rc = pw_central(&z);
    if (rc < 0) {
        mg_atomic_abort(&z.at);
        pw_err(err, err_len, "pth_save: writing %s failed after %llu bytes: %s", path,
               (unsigned long long)z.pos, mg_strerror(rc));
    } else {
        rc = mg_atomic_commit(&z.at);
        if (rc < 0)
            pw_err(err, err_len, "pth_save: committing %s failed: %s", path, mg_strerror(rc));
    }
    free(own);
    return rc;
}
