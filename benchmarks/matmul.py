"""The machine's limit: float32 FLOP/s of a large square matmul (median of repeats).

    python benchmarks/matmul.py --n 2048
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import emit, median, set_threads


def matmul_flops(n: int, repeats: int, device: str = "cpu") -> list[float]:
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    out = torch.empty(n, n, device=device)
    rates = []
    for i in range(repeats + 2):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i >= 2:  # two warm-up calls
            rates.append(2.0 * n**3 / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    threads = set_threads(args.threads)
    rates = matmul_flops(args.n, args.repeats, args.device)
    emit({"system": "matmul", "n": args.n, "threads": threads, "device": args.device,
          "flops": median(rates), "all": rates})


if __name__ == "__main__":
    main()
