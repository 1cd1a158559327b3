/* SPDX-License-Identifier: MIT */
/*
 * pickle_op.h: the pickle opcodes that PyTorch's torch.save writes
 * (protocol 2) and that this folder reads and writes, by name, with the
 * byte each is in the stream (CPython's Lib/pickletools.py names). Both
 * pickle_read.c (the reader's dispatch in pk_step) and pickle_write.c use
 * these names, so the two cannot disagree about a byte.
 *
 * Not here: what an opcode does (pickle_read.c), which opcodes the writer
 * chooses for a value (pickle_write.c). An opcode missing from this list
 * is one the reader refuses.
 */
#ifndef UNET_PICKLE_OP_H
#define UNET_PICKLE_OP_H

enum pickle_op {
    PKL_PROTO = 0x80,       /* u8 protocol version */
    PKL_STOP = '.',         /* the stack's top is the result */
    PKL_MARK = '(',         /* push a mark */
    PKL_GLOBAL = 'c',       /* "module\nname\n" */
    PKL_REDUCE = 'R',       /* callable(args tuple) */
    PKL_BINPERSID = 'Q',    /* persistent id from the stack: a storage */
    PKL_BUILD = 'b',        /* set state (only an OrderedDict's _metadata) */
    PKL_EMPTY_TUPLE = ')',
    PKL_TUPLE = 't',        /* the items above the mark */
    PKL_TUPLE1 = 0x85,      /* TUPLE1..TUPLE3: the top 1, 2, 3 items */
    PKL_TUPLE2 = 0x86,
    PKL_TUPLE3 = 0x87,
    PKL_EMPTY_DICT = '}',
    PKL_EMPTY_LIST = ']',
    PKL_SETITEM = 's',      /* dict[key] = value */
    PKL_SETITEMS = 'u',     /* key/value pairs above the mark */
    PKL_APPEND = 'a',
    PKL_APPENDS = 'e',      /* the items above the mark */
    PKL_NONE = 'N',
    PKL_NEWTRUE = 0x88,
    PKL_NEWFALSE = 0x89,
    PKL_BININT1 = 'K',      /* u8 */
    PKL_BININT2 = 'M',      /* u16 little-endian */
    PKL_BININT = 'J',       /* s32 little-endian */
    PKL_LONG1 = 0x8A,       /* u8 n, then n bytes two's complement LE */
    PKL_BINFLOAT = 'G',     /* f64 big-endian */
    PKL_BINUNICODE = 'X',   /* u32 LE length, then UTF-8 */
    PKL_BINPUT = 'q',       /* memo[u8] = top */
    PKL_LONG_BINPUT = 'r',  /* memo[u32 LE] = top */
    PKL_BINGET = 'h',       /* push memo[u8] */
    PKL_LONG_BINGET = 'j',  /* push memo[u32 LE] */
};

#endif /* UNET_PICKLE_OP_H */
