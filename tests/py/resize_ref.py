# SPDX-License-Identifier: MIT
# The oracle for tests/unet/data/test_data.c: resizes a raw float32 CHW tensor with
# torch.nn.functional.interpolate and writes the raw float32 result.
#   resize_ref.py IN OUT C H W OH OW MODE     (MODE: bilinear | nearest)
# Exit 3 with a one-line message when torch is missing, so the C test can
# say so instead of failing on a comparison.
import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:
    print("resize_ref.py: cannot import torch (%s)" % e)
    sys.exit(3)


def main():
    src, dst = sys.argv[1], sys.argv[2]
    c, h, w, oh, ow = (int(v) for v in sys.argv[3:8])
    mode = sys.argv[8]
    with open(src, "rb") as f:
        data = f.read()
    x = torch.frombuffer(bytearray(data), dtype=torch.float32).reshape(1, c, h, w)
    if mode == "bilinear":
        y = F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False)
    else:
        y = F.interpolate(x, size=(oh, ow), mode="nearest")
    with open(dst, "wb") as f:
        f.write(y.contiguous().numpy().astype("float32").tobytes())


if __name__ == "__main__":
    main()
