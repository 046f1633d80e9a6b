"""Where one training step of the engine spends its time, and how far that is from the CPU's limit.

    .venv/bin/python bench/profile_step.py                 # MNIST and CIFAR-10 shapes, one thread, ~1 minute
    .venv/bin/python bench/profile_step.py --threads 2 --batch-size 256

Three measurements, all in this one process:

1. The training step of `lenet_core.train.train` (modern LeNet-5, Adam, batch
   128 by default, channels-last as the engine runs it), timed over many steps
   and broken down by operator with `torch.profiler` into convolution forward,
   convolution backward, linear layers, pooling and activations, loss,
   optimizer update, and the rest (indexing the batch, autograd bookkeeping).
2. The arithmetic: multiply-adds of the forward pass counted layer by layer,
   times 3 for a training step (backward costs about twice the forward), as
   FLOP per image, and the GFLOP/s the step achieves.
3. The ceiling: the GFLOP/s of a large float32 matrix product (`torch.mm`,
   1024 x 1024) on the same threads, which is about what these cores can do,
   and the images/s a step would reach if all its arithmetic ran that fast.

The gap between 2 and 3 is the evidence: LeNet-5's layers are small (6 and 16
channels, 5x5 kernels, 120 and 84 units), so their kernels cannot keep the
vector units busy the way a large product does, and per-operator overhead is a
fixed cost per step whatever the batch size.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import defaultdict

import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile

from lenet_core.model import LeNet5

CATEGORIES = (  # first match wins; matched against the profiler's operator names
    ("convolution backward", ("convolution_backward", "mkldnn_convolution_backward")),
    ("convolution forward", ("conv2d", "convolution", "mkldnn_convolution")),
    ("linear layers", ("addmm", "mm", "linear", "matmul")),
    ("pooling", ("max_pool", "avg_pool")),
    ("activations", ("relu", "threshold")),
    ("loss", ("cross_entropy", "log_softmax", "nll_loss")),
    ("optimizer update", ("_foreach", "adam", "lerp", "addcdiv", "addcmul", "sqrt", "mul_", "add_", "div_")),
)


def forward_flop(model: nn.Module, channels: int) -> int:
    """FLOP (2 per multiply-add) of one image's forward pass, counted layer by layer with hooks."""
    flop = 0

    def count(module, inputs, output):
        nonlocal flop
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            flop += 2 * output[0].numel() * k
        elif isinstance(module, nn.Linear):
            flop += 2 * module.in_features * module.out_features

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(torch.zeros(1, channels, 32, 32))
    for h in hooks:
        h.remove()
    return flop


def training_step(channels: int, batch: int, channels_last: bool):
    """The engine's step (index a batch from a device tensor, forward, loss, backward, Adam), as a closure."""
    torch.manual_seed(0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = LeNet5(in_channels=channels).to(memory_format=layout)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = torch.randn(8192, channels, 32, 32)
    labels = torch.randint(0, 10, (8192,))
    perm = torch.randperm(len(data))
    state = {"i": 0}

    def step():
        i = state["i"] = (state["i"] + batch) % (len(data) - batch)
        idx = perm[i:i + batch]
        x, y = data[idx].contiguous(memory_format=layout), labels[idx]
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return model, step


def steps_per_second(step, seconds: float) -> float:
    for _ in range(20):  # warm-up: allocator, oneDNN primitive cache, Adam state
        step()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += 1
    return n / (time.perf_counter() - t0)


def breakdown(step, steps: int) -> dict[str, float]:
    """Self CPU time per category, as fractions of the profiled total."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    totals: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        name = event.key.removeprefix("aten::").lower()
        category = next((c for c, keys in CATEGORIES if any(k in name for k in keys)), "other (indexing, autograd)")
        totals[category] += event.self_cpu_time_total
    whole = sum(totals.values())
    return {c: t / whole for c, t in sorted(totals.items(), key=lambda kv: -kv[1])}


def matmul_gflops(seconds: float, n: int = 1024) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        torch.mm(a, b)
    k, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.mm(a, b)
        k += 1
    return 2 * n**3 * k / (time.perf_counter() - t0) / 1e9


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: how each sweep process runs)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seconds", type=float, default=8.0, help="timing window per measurement (default 8)")
    p.add_argument("--profile-steps", type=int, default=50)
    args = p.parse_args(argv)
    if args.threads < 1 or args.batch_size < 1 or args.seconds <= 0 or args.profile_steps < 1:
        p.error("--threads, --batch-size and --profile-steps must be >= 1, --seconds > 0")
    torch.set_num_threads(args.threads)

    print(f"cpu: {cpu_model()}, {os.cpu_count()} core(s); torch {torch.__version__}, {args.threads} thread(s); "
          f"batch {args.batch_size}; load average before: {os.getloadavg()[0]:.2f}")
    peak = matmul_gflops(args.seconds / 2)
    print(f"float32 matrix product 1024x1024: {peak:.1f} GFLOP/s on {args.threads} thread(s)\n")
    print("| input | layout | img/s | FLOP/img (train) | GFLOP/s | % of matmul | img/s at matmul speed |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    shares = {}
    for channels, name in ((1, "1x32x32 (MNIST)"), (3, "3x32x32 (CIFAR-10)")):
        for channels_last in (False, True):
            model, step = training_step(channels, args.batch_size, channels_last)
            flop = 3 * forward_flop(model, channels)
            rate = steps_per_second(step, args.seconds) * args.batch_size
            gflops = rate * flop / 1e9
            print(f"| {name} | {'channels_last' if channels_last else 'NCHW'} | {rate:,.0f} | {flop / 1e6:.2f} M "
                  f"| {gflops:.1f} | {100 * gflops / peak:.0f}% | {peak * 1e9 / flop:,.0f} |", flush=True)
            if channels_last:
                shares[name] = breakdown(step, args.profile_steps)
    print("\nWhere a channels-last training step spends its CPU time (torch.profiler, self time):")
    categories = list(dict.fromkeys(c for s in shares.values() for c in s))
    print("| part of the step | " + " | ".join(shares) + " |")
    print("| --- |" + " ---: |" * len(shares))
    for c in categories:
        print(f"| {c} | " + " | ".join(f"{100 * s.get(c, 0):.0f}%" for s in shares.values()) + " |")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
