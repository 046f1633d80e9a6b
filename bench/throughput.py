"""Training and evaluation throughput: the lenet_core engine against a reference loop.

    .venv/bin/python bench/throughput.py                      # bounded: about 2-3 minutes on 2 CPU cores
    .venv/bin/python bench/throughput.py --full               # whole epochs (54,000 / 45,000 images)
    .venv/bin/python bench/throughput.py --device cuda        # on a GPU

Both loops train the modern LeNet-5 (ReLU, max pooling, `lenet_core.model.LeNet5`
with its defaults) with Adam at lr 1e-3, in one process, with the same torch
thread settings, on the same images. Why each choice:

* The REFERENCE is the loop of the pytorch-template repository (victoresque),
  which is how such a model is usually trained: a torchvision dataset whose
  per-sample transform is `Compose([ToTensor(), Normalize(mean, std)])`,
  `DataLoader(batch_size=128, shuffle=True, num_workers=2)`, and per batch
  zero_grad, forward, cross-entropy, backward, step, with the template's
  bookkeeping (`loss.item()` and the accuracy, per batch). Each epoch ends with
  a validation pass through a DataLoader of the same settings over the
  validation part, as the template's `_valid_epoch` does. Its tensorboard
  writer (images and histograms) is left out: that is logging, not training.
  The workers are not persistent (the template's default), so each epoch pays
  for starting them, as the template's users do.
* MNIST goes through the real `torchvision.datasets.MNIST` class, reading the
  uncompressed IDX files that this script decompresses from the offline mirror
  into `<cache>/MNIST/raw/` (checked against the official SHA-256). The 28x28
  digits are padded to LeNet's 32x32 input by `transforms.Pad(2)` before
  ToTensor. torchvision's CIFAR10 class only reads the official pickles, which
  the mirror lacks, so `ReferenceCIFAR10` serves the prepared arrays with the
  exact `CIFAR10.__getitem__` (PIL image from an HxWxC uint8 array, then the
  transform).
* SAME DATA: the reference uses the engine's validation split
  (`lenet_core.data.split_indices`), the first `train_size` examples of its
  training part, and its per-channel mean and std, so both loops feed the
  network identical tensors. The evaluation section checks this: the same
  weights give the same test loss through both pipelines.
* The ENGINE is `lenet_core.train.train` itself, unchanged: its per-epoch
  times (`record["history"][i]["seconds"]`) include its validation pass,
  exactly like the reference's epoch times.
* A FIXED NUMBER OF IMAGES: by default each epoch trains on the first
  `--train-size` images of the training part (and validates on the whole
  validation part, as both loops always do), so the default run stays short;
  `--full` trains on whole epochs.
* WARM-UP: the first epoch of every run is excluded from the headline number
  (it pays for one-time costs: allocator growth, oneDNN/cuDNN kernel choice,
  lazy optimizer state). The "all epochs" column keeps it; for the engine that
  is the `train_images_per_second` the engine records in its provenance.
* Evaluation throughput: `lenet_core.train.evaluate` on the test set against the
  template's `test.py` pattern (`DataLoader(batch_size=512, shuffle=False,
  num_workers=2)`, forward and loss under `no_grad`), on the same trained
  weights; one untimed pass each, then the mean of `--eval-repeats` timed passes.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision import transforms

from lenet_core.config import RunConfig
from lenet_core.catalog import IDX_SHA256
from lenet_core.data import DATASETS, load_uint8, split_indices, splits
from lenet_core.model import LeNet5
from lenet_core.paths import mirror_dir, project_root
from lenet_core.train import EVAL_BATCH, evaluate, pick_device, train

BENCH_DATASETS = ("mnist", "cifar10")
INPUT_SIZE = 32  # LeNet-5's input; 28x28 digits are padded to it
REFERENCE_BATCH = 128  # the template's config.json
REFERENCE_TEST_BATCH = 512  # the template's test.py
REFERENCE_WORKERS = 2  # the template's config.json and test.py
DEFAULT_TRAIN_SIZE = 12_800  # images per epoch unless --full: 100 batches of 128
EXTRA_ENGINE_BATCH = 256  # the engine is also reported at this batch size
LR = 1e-3


# ---------------------------------------------------------------- the reference data pipeline

class ReferenceCIFAR10(torchvision.datasets.VisionDataset):
    """CIFAR-10 served exactly as `torchvision.datasets.CIFAR10` serves it.

    torchvision's class only reads the official pickles; this one takes the
    prepared uint8 arrays (`lenet_core.data.load_uint8`) in the layout the
    pickles load into (`data`: N x H x W x C uint8, `targets`: list of int) and
    keeps `__getitem__` line for line.
    """

    def __init__(self, root, train: bool = True, transform=None, target_transform=None):
        super().__init__(root, transform=transform, target_transform=target_transform)
        raw = load_uint8("cifar10")
        part = "train" if train else "test"
        self.data = raw[f"{part}_x"].permute(0, 2, 3, 1).contiguous().numpy()
        self.targets = raw[f"{part}_y"].tolist()

    def __getitem__(self, index: int):
        img, target = self.data[index], self.targets[index]
        img = Image.fromarray(img)
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __len__(self) -> int:
        return len(self.data)


def materialize_mnist(mirror: Path, root: Path) -> None:
    """Decompress the mirror's MNIST .gz files into `root/MNIST/raw/`, where torchvision reads them."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for stem, sha256 in IDX_SHA256["mnist"].items():
        target = raw / stem
        if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == sha256:
            continue
        source = mirror / DATASETS["mnist"].mirror_folder / f"{stem}.gz"
        if not source.exists():
            sys.exit(f"MNIST: {source} not found; give the offline mirror with --mirror DIR (or $DATA_MIRROR)")
        content = gzip.decompress(source.read_bytes())
        if hashlib.sha256(content).hexdigest() != sha256:
            sys.exit(f"MNIST: {source} does not hold the official {stem} (SHA-256 mismatch)")
        target.write_bytes(content)


def reference_dataset(name: str, root: Path, train: bool, mean, std):
    """The torchvision-style dataset with the template's per-sample transform."""
    pad = (INPUT_SIZE - load_uint8(name)["train_x"].shape[-1]) // 2
    transform = transforms.Compose([
        *([transforms.Pad(pad)] if pad else []),  # black border: 28x28 -> 32x32, as in 1998
        transforms.ToTensor(),
        transforms.Normalize(mean.tolist(), std.tolist()),
    ])
    if name == "mnist":
        return torchvision.datasets.MNIST(str(root), train=train, transform=transform, download=False)
    return ReferenceCIFAR10(str(root), train=train, transform=transform)


def loader(dataset, batch_size: int, shuffle: bool) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=REFERENCE_WORKERS)


# ---------------------------------------------------------------- the reference loop

def now(device: torch.device) -> float:
    """A wall-clock reading after the device has finished its queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


@torch.no_grad()
def reference_evaluate(model: nn.Module, data: DataLoader, device: torch.device) -> dict:
    """The template's validation / test pass: per batch forward, loss.item(), accuracy."""
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    for x, y in data:
        x, y = x.to(device), y.to(device)
        out = model(x)
        loss_sum += F.cross_entropy(out, y).item() * len(y)
        correct += (out.argmax(1) == y).sum().item()
        n += len(y)
    return dict(loss=loss_sum / n, acc=correct / n)


def reference_train(name: str, train_loader: DataLoader, val_loader: DataLoader, epochs: int,
                    device: torch.device, seed: int) -> list[float]:
    """The template's training loop; returns the seconds of each epoch (validation included)."""
    torch.manual_seed(seed)
    model = LeNet5(in_channels=DATASETS[name].channels).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    seconds = []
    for _ in range(epochs):
        t0 = now(device)
        model.train()
        loss_sum, correct = 0.0, 0
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            out = model(x)
            loss = F.cross_entropy(out, y)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(y)
            correct += (out.argmax(1) == y).sum().item()
        reference_evaluate(model, val_loader, device)
        seconds.append(now(device) - t0)
    return seconds


# ---------------------------------------------------------------- measurements

class ForeignLoad:
    """How many cores other processes kept busy while a measurement ran (Linux).

    Both loops need the cores to themselves: with two intra-op threads on two
    cores, one competing busy process slows a training step down several-fold.
    So every row reports the rest of the machine's CPU use over its run (all
    CPU time in /proc/stat, hypervisor steal included, minus this process's and
    its reaped DataLoader workers'); clearly above 0 means a shared machine.
    """

    cores: float | None = None

    def __enter__(self):
        self.start = self._read()
        return self

    def __exit__(self, *exc):
        end = self._read()
        if self.start and end:
            wall = end[0] - self.start[0]
            self.cores = max(0.0, ((end[1] - self.start[1]) - (end[2] - self.start[2])) / wall)

    @staticmethod
    def _read() -> tuple[float, float, float] | None:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        except (OSError, ValueError):
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields
        t = os.times()
        return (time.perf_counter(), (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK"),
                t.user + t.system + t.children_user + t.children_system)


@dataclass
class TrainTiming:
    dataset: str
    loop: str
    batch: int
    images: int  # training images per epoch
    seconds: list[float]  # per epoch, validation included
    other_cores: float | None  # ForeignLoad over the run
    recorded_rate: float | None = None  # the engine's own provenance number, when there is one
    copies: int = 1  # processes training side by side; seconds are then the slowest one's


    @property
    def timed(self) -> list[float]:
        """The epochs that count: all but the first, unless there is only one."""
        return self.seconds[1:] or self.seconds

    @property
    def rate(self) -> float:
        return self.copies * self.images * len(self.timed) / sum(self.timed)

    @property
    def all_epochs_rate(self) -> float:
        return self.recorded_rate or self.copies * self.images * len(self.seconds) / sum(self.seconds)


@dataclass
class EvalTiming:
    dataset: str
    loop: str
    batch: int
    rate: float
    result: dict  # loss and accuracy of the last pass
    other_cores: float | None


def _engine_process(config: RunConfig, device: str, barrier) -> list[float]:
    """One of the side-by-side engine processes: one thread, like each process of the sweep."""
    torch.set_num_threads(1)
    splits(config.dataset, device)  # data loading stays out of the timed epochs
    barrier.wait()  # every process starts training together, so the epochs overlap
    return [h["seconds"] for h in train(config, device=device, progress=False).record["history"]]


def parallel_engine(config: RunConfig, processes: int, device: str) -> tuple[list[float], float]:
    """Per-epoch seconds of the slowest of `processes` engine processes training side by side
    (each its own seed), and the sum of their recorded images/s."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager, ProcessPoolExecutor(processes, mp_context=ctx) as pool:
        barrier = manager.Barrier(processes)
        futures = [pool.submit(_engine_process, config.replace(seed=config.seed + i), device, barrier)
                   for i in range(processes)]
        per_process = [f.result() for f in futures]
    slowest = [max(epoch) for epoch in zip(*per_process)]
    n = config.train_size or len(splits(config.dataset, device).train_y)
    return slowest, sum(n * len(s) / sum(s) for s in per_process)


def time_passes(run_pass, images: int, repeats: int, device: torch.device) -> tuple[float, dict]:
    """Images/s of `run_pass` over `repeats` timed passes after one untimed warm-up pass."""
    result = run_pass()
    t0 = now(device)
    for _ in range(repeats):
        result = run_pass()
    return images * repeats / (now(device) - t0), result


def bench_dataset(name: str, args, device: torch.device, cache: Path) -> tuple[list[TrainTiming], list[EvalTiming]]:
    data = splits(name, str(device))  # the engine's tensors, built once here, outside every timer
    n_images = args.train_size or len(data.train_y)
    if n_images > len(data.train_y):
        sys.exit(f"--train-size {n_images} is larger than the training part of {name} ({len(data.train_y)})")

    full = reference_dataset(name, cache, True, data.mean, data.std)
    train_idx, val_idx = split_indices(len(full))
    train_loader = loader(Subset(full, train_idx[:n_images].tolist()), REFERENCE_BATCH, shuffle=True)
    val_loader = loader(Subset(full, val_idx.tolist()), REFERENCE_BATCH, shuffle=False)

    say(f"{name}: reference loop, batch {REFERENCE_BATCH}, {args.epochs} epoch(s) of {n_images:,} images")
    with ForeignLoad() as load:
        seconds = reference_train(name, train_loader, val_loader, args.epochs, device, args.seed)
    timings = [TrainTiming(name, "reference", REFERENCE_BATCH, n_images, seconds, load.cores)]
    engine_batches = list(dict.fromkeys((args.batch_size, EXTRA_ENGINE_BATCH)))
    trained = None  # the first engine run's model: the weights both evaluations use
    for batch in engine_batches:
        say(f"{name}: engine, batch {batch}, {args.epochs} epoch(s) of {n_images:,} images")
        config = RunConfig(dataset=name, epochs=args.epochs, batch_size=batch, train_size=args.train_size,
                           optimizer="adam", lr=LR, seed=args.seed)
        with ForeignLoad() as load:
            run = train(config, device=str(device), progress=False)
        timings.append(TrainTiming(name, "engine", batch, n_images, [h["seconds"] for h in run.record["history"]],
                                   load.cores, recorded_rate=run.record["provenance"]["train_images_per_second"]))
        if trained is None:
            trained = run.model
    if args.processes > 1 and device.type == "cpu":
        batch = args.batch_size
        say(f"{name}: engine, batch {batch}, {args.processes} processes side by side with one thread each")
        config = RunConfig(dataset=name, epochs=args.epochs, batch_size=batch, train_size=args.train_size,
                           optimizer="adam", lr=LR, seed=args.seed)
        with ForeignLoad() as load:
            seconds, recorded = parallel_engine(config, args.processes, str(device))
        timings.append(TrainTiming(name, f"engine, {args.processes} processes", batch, n_images, seconds,
                                   load.cores, recorded_rate=recorded, copies=args.processes))

    say(f"{name}: evaluation on the test set ({len(data.test_y):,} images), same weights for both")
    test_loader = loader(reference_dataset(name, cache, False, data.mean, data.std), REFERENCE_TEST_BATCH, shuffle=False)
    n_test = len(data.test_y)
    evals = []
    for loop, batch, run_pass in (
        ("reference", REFERENCE_TEST_BATCH, lambda: reference_evaluate(trained, test_loader, device)),
        ("engine", min(EVAL_BATCH, n_test), lambda: evaluate(trained, data.test_x, data.test_y)),
    ):
        with ForeignLoad() as load:
            rate, result = time_passes(run_pass, n_test, args.eval_repeats, device)
        evals.append(EvalTiming(name, loop, batch, rate, result, load.cores))
    if abs(evals[0].result["loss"] - evals[1].result["loss"]) > 1e-4:
        say(f"WARNING {name}: the two pipelines disagree on the test loss of the same weights "
            f"({evals[0].result['loss']:.6f} vs {evals[1].result['loss']:.6f}): they do not see the same inputs")
    return timings, evals


# ---------------------------------------------------------------- report

def say(text: str) -> None:
    print(f"... {text}", file=sys.stderr, flush=True)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(device: torch.device) -> list[str]:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        f"date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
        f"cpu: {cpu_model()}, {cores} usable core(s) ({os.cpu_count()} online)",
        f"device: {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, python {platform.python_version()}",
        f"torch threads: {torch.get_num_threads()} intra-op, {torch.get_num_interop_threads()} inter-op "
        f"(the same for both loops); reference DataLoader workers: {REFERENCE_WORKERS}",
    ]


def cores(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def markdown(header: list[str], rows: list[list[str]]) -> str:
    aligns = ["---" if i < 3 else "---:" for i in range(len(header))]
    return "\n".join("| " + " | ".join(r) + " |" for r in [header, aligns, *rows])


def train_table(timings: list[TrainTiming]) -> str:
    reference = {t.dataset: t for t in timings if t.loop == "reference"}
    rows = [[t.dataset, t.loop, str(t.batch), f"{t.rate:,.0f}", f"{t.all_epochs_rate:,.0f}",
             f"{t.rate / reference[t.dataset].rate:.1f}x", cores(t.other_cores)] for t in timings]
    return markdown(["dataset", "loop", "batch", "train img/s", "all epochs img/s", "vs reference",
                     "other load (cores)"], rows)


def eval_table(evals: list[EvalTiming]) -> str:
    reference = {e.dataset: e for e in evals if e.loop == "reference"}
    rows = [[e.dataset, e.loop, str(e.batch), f"{e.rate:,.0f}", f"{e.rate / reference[e.dataset].rate:.1f}x",
             f"{e.result['acc']:.4f}", cores(e.other_cores)] for e in evals]
    return markdown(["dataset", "loop", "batch", "eval img/s", "vs reference", "test acc", "other load (cores)"], rows)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", choices=BENCH_DATASETS, default=list(BENCH_DATASETS))
    p.add_argument("--batch-size", type=int, default=REFERENCE_BATCH,
                   help=f"engine batch size (default {REFERENCE_BATCH}, like for like with the reference; "
                        f"the engine is also run at {EXTRA_ENGINE_BATCH})")
    p.add_argument("--epochs", type=int, default=2,
                   help="epochs per run; the first is a warm-up left out of 'train img/s' (default 2)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--train-size", type=int, default=DEFAULT_TRAIN_SIZE,
                      help=f"training images per epoch (default {DEFAULT_TRAIN_SIZE:,})")
    size.add_argument("--full", dest="train_size", action="store_const", const=0,
                      help="whole epochs: all 54,000 (MNIST) / 45,000 (CIFAR-10) training images")
    p.add_argument("--eval-repeats", type=int, default=3, help="timed test-set passes per loop (default 3)")
    p.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads for both loops (0: torch's default)")
    p.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                   help="also time this many engine processes training side by side, one thread each, as "
                        "the sweep runs them (CPU only; default: one per core; 1 = skip)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mirror", help="offline dataset mirror holding mnist/*.gz (default: $DATA_MIRROR, "
                                    "else ../shared/data next to the project)")
    p.add_argument("--cache", help="folder for the decompressed MNIST IDX files (default: a temporary folder)")
    args = p.parse_args(argv)
    for flag in ("batch_size", "epochs", "eval_repeats", "processes"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag.replace('_', '-')} must be >= 1")
    if args.train_size < 0:
        p.error("--train-size must be >= 0 (0 = whole epochs)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = pick_device(args.device)
    except ValueError as exc:
        sys.exit(str(exc))
    mirror = mirror_dir(args.mirror) or project_root().parent / "shared" / "data"

    with tempfile.TemporaryDirectory(prefix="lenet-bench-") as tmp:
        cache = Path(args.cache).expanduser().resolve() if args.cache else Path(tmp)
        if "mnist" in args.datasets:
            materialize_mnist(mirror, cache)
        timings, evals = [], []
        for name in args.datasets:
            t, e = bench_dataset(name, args, device, cache)
            timings += t
            evals += e

    per_epoch = f"{args.train_size:,} training images per epoch" if args.train_size else "whole epochs"
    print("\n".join(hardware(device)))
    print(f"run: {args.epochs} epoch(s) per loop, {per_epoch}, validation pass each epoch; "
          f"'train img/s' leaves out the first epoch" + (" (only one epoch: nothing left out)" if args.epochs == 1 else ""))
    print()
    print("Training (Adam lr 1e-3; images/s of training, per-epoch validation included)")
    print(train_table(timings))
    print()
    print("Evaluation on the test set (same trained weights through both pipelines)")
    print(eval_table(evals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
