"""Training steps per second of LeNet-5 in the default (NCHW) and channels-last memory
formats, with the default and the fused Adam, on one CPU thread (how the sweep runs).

    .venv/bin/python bench/memory_format.py [--threads 1] [--steps 40] [--repeats 3]

Synthetic batches (random images, no data loading) so only the step itself is timed;
the variants are interleaved and repeated so a busy machine slows them alike.
"""

import argparse
import time

import torch
import torch.nn.functional as F

from lenet_core.model import LeNet5


def images_per_second(channels_last: bool, fused: bool, channels: int, batch: int, steps: int) -> float:
    torch.manual_seed(0)
    model = LeNet5(in_channels=channels)
    x = torch.randn(batch * steps, channels, 32, 32)
    y = torch.randint(0, 10, (batch * steps,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-3, fused=True) if fused else torch.optim.Adam(model.parameters(), 1e-3)
    start = time.perf_counter()
    for i in range(steps):
        loss = F.cross_entropy(model(x[i * batch:(i + 1) * batch]), y[i * batch:(i + 1) * batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return batch * steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = [(cl, fused) for cl in (False, True) for fused in (False, True)]
    results = {(v, c): [] for v in variants for c in (1, 3)}
    for _ in range(args.repeats):
        for v in variants:
            for c in (1, 3):
                results[(v, c)].append(images_per_second(*v, c, args.batch, args.steps))
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, median of {args.repeats}")
    print("| format | Adam | 1x32x32 img/s | 3x32x32 img/s |")
    print("| --- | --- | ---: | ---: |")
    for cl, fused in variants:
        med = [sorted(results[((cl, fused), c)])[args.repeats // 2] for c in (1, 3)]
        print(f"| {'channels_last' if cl else 'NCHW'} | {'fused' if fused else 'default'} | {med[0]:,.0f} | {med[1]:,.0f} |")


if __name__ == "__main__":
    main()
