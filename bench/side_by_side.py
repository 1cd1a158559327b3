"""side_by_side.py: what train_vs_torch.py and infer_vs_torch.py share: the
environment that caps each side at an instruction set (--isa), and their
common options (--build, --rounds, --isa, --bf16, --omp-wait), applied the
same way: --omp-wait passive sets OMP_WAIT_POLICY=passive for both programs
(see train_vs_torch.py). apply() also prints the BLAS library PyTorch
loads: Debian's torch takes libblas.so.3 through alternatives, and the
netlib reference BLAS there (no libopenblas0-pthread) slows its BLAS-based
ops (the transposed convolutions) and so flatters the ratios. Not here:
running or timing either side."""
import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Per --isa: (unet-train's environment, torch's environment).
ISA_ENV = {
    "native": ({}, {}),
    "avx2": ({"UNET_KERNELS": "avx2"}, {"ATEN_CPU_CAPABILITY": "avx2", "DNNL_MAX_CPU_ISA": "AVX2"}),
}


def parser(rounds):
    """An ArgumentParser with the common options (``rounds``: the default
    of --rounds); the caller adds its own."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=rounds)
    ap.add_argument("--isa", choices=sorted(ISA_ENV), default="native")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--omp-wait", choices=["default", "passive"], default="default")
    return ap


# Prints the real paths of the BLAS libraries a process that imported
# torch has mapped.
_BLAS_PROBE = ("import torch, os\n"
               "maps = [l.split()[-1] for l in open('/proc/self/maps') if 'blas' in l.lower()]\n"
               "print('\\n'.join(sorted({os.path.realpath(p) for p in maps})))\n")


def torch_blas():
    """The BLAS PyTorch uses here: ("OpenBLAS", path), ("netlib", path), or
    another name; exits with one line when torch cannot be imported."""
    p = subprocess.run(["/usr/bin/python3", "-c", _BLAS_PROBE], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit(f"bench: cannot import torch with /usr/bin/python3: {p.stderr.strip()[-200:]}")
    libs = p.stdout.split()
    for path in libs:
        if "openblas" in path:
            return "OpenBLAS", path
    for path in libs:
        if "/blas/" in path:
            return "netlib reference BLAS", path
    return ("unknown", libs[0]) if libs else ("none mapped", "-")


def apply(a):
    """Sets what --omp-wait asks for both sides and prints the settings,
    with PyTorch's BLAS."""
    if a.omp_wait == "passive":
        os.environ["OMP_WAIT_POLICY"] = "passive"  # both sides inherit it
    name, path = torch_blas()
    print(f"isa: {a.isa}, OpenMP waits: {a.omp_wait}, PyTorch BLAS: {name} ({path})")
    if name != "OpenBLAS":
        print("  note: PyTorch is not at its best without OpenBLAS "
              "(apt-get install libopenblas0-pthread; scripts/setup.sh test does)")
