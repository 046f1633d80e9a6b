"""The 1998 optimizer's speed: one example a step, as the paper trained LeNet-5.

    .venv/bin/python bench/sdlm.py                  # about a minute on one core
    .venv/bin/python bench/sdlm.py --steps 20000 --dataset cifar10

These numbers, all on one thread, in one process:

* ENGINE: steps per second of `lenet_core.train.train` itself training `RunConfig.classic`
  (RBF outputs, the MAP criterion, SDLM, batch size 1) for one pass over `--steps` examples, its
  curvature estimate taken out (timed on its own below) and its validation pass included.
* BARE: the same network and optimizer in the leanest loop there is (index, forward, loss,
  backward, the optimizer's one fused update), nothing else, with the engine's kernels (at one
  image a step on a CPU: PyTorch's native convolutions, `lenet_core.train.fast_layout`, and the
  step's forward and backward compiled into one function, `lenet_core.train.compiled_objective`):
  the floor the engine is held to. ENGINE / BARE says what the engine's loop costs beyond the step.
* BARE, EAGER: the same bare loop, forward and backward run op by op: what compiling the step buys.
* BARE, EAGER, ONEDNN: the eager bare loop with oneDNN's convolutions (PyTorch's default on a CPU): what
  the engine's choice of kernels buys.
* CURVATURE: seconds for one estimate of h_kk (`SDLM.begin_pass`: the exact Gauss-Newton diagonal
  on 500 training examples), which the paper repeats before every pass.

Then what 20 passes of the 54,000 MNIST training examples (45,000 on CIFAR-10) take at that speed.
Timings on a shared machine are noisy: compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import time

import torch

from lenet_core.config import RunConfig
from lenet_core.data import splits
from lenet_core.model import LeNet5
from lenet_core.registry import LOSSES, OPTIMIZERS
from lenet_core.train import compiled_objective, fast_layout, onednn, train


def bare_steps_per_second(config: RunConfig, steps: int, use_onednn: bool, compiled: bool = True) -> float:
    data = splits(config.dataset, "cpu")
    torch.manual_seed(0)
    model = LeNet5(**config.model_kwargs())
    optimizer = OPTIMIZERS[config.optimizer](model, config)
    criterion = LOSSES[config.loss](config)
    x, y = data.train_x[:steps], data.train_y[:steps]
    objective = compiled_objective(model, criterion) if compiled else lambda xi, yi: criterion(model(xi), yi).backward()
    with onednn(use_onednn):
        objective(x[:1], y[:1])  # compiles, outside the timing
        start = time.perf_counter()
        for i in range(steps):
            optimizer.zero_grad(set_to_none=True)
            objective(x[i:i + 1], y[i:i + 1])
            optimizer.step()
        return steps / (time.perf_counter() - start)


def curvature_seconds(config: RunConfig) -> float:
    data = splits(config.dataset, "cpu")
    model = LeNet5(**config.model_kwargs())
    optimizer = OPTIMIZERS[config.optimizer](model, config)
    start = time.perf_counter()
    optimizer.begin_pass(data.train_x, data.train_y, torch.Generator().manual_seed(0))
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5000, help="examples in the timed pass (default 5000)")
    parser.add_argument("--dataset", default="mnist")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    config = RunConfig.classic(args.dataset, epochs=1, train_size=args.steps)

    curvature = curvature_seconds(config)
    run = train(config, progress=False)
    engine = args.steps / (run.record["history"][0]["seconds"] - curvature)
    native = fast_layout(1, torch.device("cpu"))[1]
    bare = bare_steps_per_second(config, args.steps, native)
    eager = bare_steps_per_second(config, args.steps, native, compiled=False)
    default = bare_steps_per_second(config, args.steps, True, compiled=False)
    n = len(splits(args.dataset, "cpu").train_y)
    per_pass = n / engine + curvature
    print(f"{args.dataset}, one thread, {args.steps} steps of one example")
    print(f"  engine (lenet_core.train):  {engine:8.0f} steps/s")
    print(f"  bare loop:                  {bare:8.0f} steps/s   engine / bare = {engine / bare:.2f}")
    print(f"  bare loop, eager step:      {eager:8.0f} steps/s   bare / this = {bare / eager:.2f}")
    print(f"  bare loop, eager, oneDNN:   {default:8.0f} steps/s   eager / this = {eager / default:.2f}")
    print(f"  curvature estimate:         {curvature:8.1f} s (500 examples, before each pass)")
    print(f"  one pass of {n} examples: {per_pass / 60:.1f} min; 20 passes: {20 * per_pass / 60:.0f} min")


if __name__ == "__main__":
    main()
