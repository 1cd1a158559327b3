/* SPDX-License-Identifier: MIT */
/*
 * fuzz_pth_zip.c: libFuzzer harness for the .pth reader as a whole, zip
 * container first (src/unet/pth/zip_read.c: end of central directory, zip64
 * records, central directory entries, local headers, CRC-32, the version
 * record), then the pickle when the mutation left the CRCs intact.
 *
 * Input: the bytes of a .pth file, handed to pth_load_mem. Seeds are small
 * checkpoints written by torch.save and by Python's zipfile
 * (fuzz/tools/make_seeds.py). A tree that loads is walked and saved back
 * (fuzz_pv.h). Mutations of the pickle itself rarely survive the CRC here;
 * fuzz_pickle.c covers the pickle machine. FUZZ_VERBOSE=1 in the
 * environment prints why an input was refused.
 */
#include "fuzz_pv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[4200];
    if (!path[0]) snprintf(path, sizeof path, "%s/roundtrip.pth", fz_tmpdir());
    pv_arena *a = NULL;
    pv *root = NULL;
    char err[PTH_ERR_LEN];
    int rc = pth_load_mem(data, size, &a, &root, err, sizeof err);
    if (rc != 0) {
        FZ_CHECK(rc < 0 && !a && !root && err[0], "failure %d without its message", rc);
        if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "pth_load_mem: %s\n", err);
        return 0;
    }
    FZ_CHECK(a && root, "success without a tree");
    FZ_CHECK(!pv__internal(root), "a reader-internal node in the result");
    (void)fz_pv_walk(root, 0);
    fz_pv_roundtrip(root, path);
    pv_arena_free(a);
    return 0;
}
