"""side_by_side.py: what train_vs_torch.py and infer_vs_torch.py share: the
environment that caps each side at an instruction set (--isa), and their
common options (--build, --rounds, --isa, --bf16, --omp-wait), applied the
same way: --omp-wait passive sets OMP_WAIT_POLICY=passive for both programs
(see train_vs_torch.py). Not here: running or timing either side."""
import argparse
import os

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


def apply(a):
    """Sets what --omp-wait asks for both sides and prints the settings."""
    if a.omp_wait == "passive":
        os.environ["OMP_WAIT_POLICY"] = "passive"  # both sides inherit it
    print(f"isa: {a.isa}, OpenMP waits: {a.omp_wait}")
