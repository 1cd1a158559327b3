/* SPDX-License-Identifier: MIT */
/*
 * error.c: the library's version (mg_version) and the text and names for
 * the MG_E* codes, generated from the one table
 * in memguard.h so the three can never disagree.
 */
#include "memguard.h"

const char *mg_strerror(int err)
{
    switch (err) {
    case MG_OK: return "success";
#define XX(name, code, text) case MG_##name: return text;
        MG_ERRNO_MAP(XX)
#undef XX
    default: return "unknown error";
    }
}

const char *mg_err_name(int err)
{
    switch (err) {
    case MG_OK: return "MG_OK";
#define XX(name, code, text) case MG_##name: return "MG_" #name;
        MG_ERRNO_MAP(XX)
#undef XX
    default: return "MG_UNKNOWN";
    }
}

const char *mg_version(void) { return MG_VERSION_STRING; }
