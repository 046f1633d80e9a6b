"""The Method and Reproduce pages: profiles, hardware, the data copies and what a lossy copy cost,
measured time; and the introduction's figure of the network and samples of each dataset."""

from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path

from .. import plots
from ..data import DATASETS, DataError
from ..experiments import PROFILES, active_profile, load_spec
from ..stats import welch_difference, welch_p
from .cells import cell_of
from .markdown import GENERATED, IMAGES, RUNS_CSV, dataset_title, duration, figure_md, md_table


def plan_records(profile: str) -> tuple[dict[str, object], dict[str, dict]]:
    """Unique configurations the profile's sweep runs (by key) and the stored records among them."""
    from ..store import load, run_key
    from ..sweep import plan

    jobs, _ = plan(profile)
    configs, records = {}, {}
    for job in jobs:
        for config in job.configs:
            try:
                key = run_key(config)
            except DataError:
                key = f"unprepared:{config.canonical_json()}"
            configs.setdefault(key, (job.notebook, config))
            if key not in records and not key.startswith("unprepared:"):
                record = load(key)
                if record is not None:
                    records[key] = record
    return configs, records


def verdicts_section(profile: str) -> str:
    """How "What we found" decides, with the constants it decides by, and where seeds were added."""
    from ..findings import ALPHA, POWER
    from .found import CONTENDER_P

    spec = load_spec()
    extra = [(nb, d, len(sets), more["seeds"], more.get("pending", False)) for nb, entry in spec["notebooks"].items()
             for p, more in (entry.get("more_seeds") or {}).items() if p == profile
             for d, sets in more.items() if d not in ("seeds", "pending")]
    out = ["## How the verdicts are reached\n\n"
           f"Each chapter's settings are compared with its baseline, dataset by dataset, as one family of "
           f"comparisons; the ladder's rungs, each against the rung before, are another. Within a family, Holm's "
           f"step-down procedure keeps the chance of calling any difference that is not there at {ALPHA:.0%}: a "
           f"setting is *better* or *worse* only when its Holm-adjusted p is below {ALPHA:g}, and otherwise it "
           f"*cannot be told apart* from the baseline at that number of seeds. For such a setting the page gives "
           f"the difference its seeds would have detected with {POWER:.0%} power at the strictest Holm level, from "
           f"the spread of those seeds: an effect smaller than that may exist unseen. Seeds that failed (diverged, "
           f"stayed near chance, or fell back to it) are named with what their records show.\n"]
    if extra:
        rows = [[f"`{nb}`", dataset_title(d), str(n), ", ".join(map(str, seeds))
                 + (" (being trained; the pages use the profile's seeds until they are in)" if pending else "")]
                for nb, d, n, seeds, pending in extra]
        out.append(f"**Seeds where they decide.** Where a chapter's comparison on a dataset was undecided on "
                   f"*validation* accuracy only for lack of seeds (over the profile's seeds, a raw p below "
                   f"{CONTENDER_P:g} that Holm's correction lifts above it), the baseline and those close contenders "
                   f"train more seeds (`more_seeds` in `notebooks/sweep.yml`). Validation picks them, so the test set "
                   f"still chooses nothing; the verdicts then use every seed.\n")
        out.append(md_table(["notebook", "dataset", "settings with more seeds", "their seeds"], rows, "llrl"))
    return "\n".join(out)


def method_fragment(profile: str) -> str:
    spec = load_spec()
    out = ["## The profiles\n\nFrom `notebooks/sweep.yml`. A notebook may override its profile (last column).\n"]
    rows = []
    for name in PROFILES:
        p = spec["profiles"][name]
        overrides = [f"{nb}: " + ", ".join(f"{k} {v}" for k, v in entry["profiles"][name].items())
                     for nb, entry in spec["notebooks"].items() if name in (entry.get("profiles") or {})]
        rows.append([f"**{name}**" if name == profile else name, str(p["epochs"]),
                     "all" if not p["train_size"] else f"{p['train_size']:,}",
                     ", ".join(map(str, p["seeds"])), ", ".join(dataset_title(d) for d in p["datasets"]),
                     "; ".join(overrides) or "–"])
    out.append(md_table(["profile", "epochs", "training examples", "seeds", "datasets", "notebook overrides"], rows, "lrrlll"))
    out.append(f"This build shows the **{profile}** profile.\n")
    out.append(verdicts_section(profile))

    configs, records = plan_records(profile)
    out.append(f"## Hardware and software\n\nFrom the provenance of the {len(records)} stored runs of the "
               f"{profile} profile ({len(configs)} planned).\n")
    if records:
        groups = Counter((p["device"], p["device_name"], p["host"], p["torch"], p["python"], p["threads"])
                         for p in (r["provenance"] for r in records.values()))
        rows = [[dev, name, host, torch, py, str(threads), str(n)]
                for (dev, name, host, torch, py, threads), n in groups.most_common()]
        out.append(md_table(["device", "device name", "host", "torch", "python", "threads", "runs"], rows, "lllllrr"))
        dates = sorted(r["provenance"]["date"] for r in records.values())
        speeds = sorted(r["provenance"]["train_images_per_second"] for r in records.values())
        out.append(f"Trained between {dates[0][:16].replace('T', ' ')} and {dates[-1][:16].replace('T', ' ')} "
                   f"(UTC); median throughput {speeds[len(speeds) // 2]:,.0f} training images per second "
                   f"per run.\n")
    else:
        out.append("No runs of this profile are stored yet.\n")

    out.append(data_fragment())
    out.append(copy_comparison_fragment(profile))
    return "\n".join(out)


def data_fragment() -> str:
    """Each copy of each dataset: what it is, where it came from, and what the book uses it for."""
    from .. import data
    from ..experiments import copies_in_progress, published_copy

    out = ["## The data\n\nEach copy of each dataset, from its provenance record (`data/<name>.json`, written "
           "when the copy was imported and verified).\n"]
    rows = []
    for name, copies in data.COPIES.items():
        for copy in copies:
            use = ("published in this book" if copy == published_copy(name)
                   else "being trained, not yet published" if copy in copies_in_progress()
                   else "only to measure what it costs (below)")
            try:
                prov = data.provenance(name, copy)
            except DataError:
                rows.append([dataset_title(name), copy, "not prepared here", "–", "–", "–", use])
                continue
            rows.append([dataset_title(name), prov["copy"], prov["source"], "**yes**" if prov["lossy"] else "no",
                         f"{prov['n_train']:,} / {prov['n_test']:,}", f"`{prov['content_sha256'][:16]}`", use])
    out.append(md_table(["dataset", "copy", "source", "lossy", "train / test images", "content SHA-256 (prefix)",
                         "used"], rows, "llllrll"))
    return "\n".join(out)


def copy_comparison_fragment(profile: str) -> str:
    """What the lossy copy cost: the same runs, same seeds, on the official files and on the copy."""
    from ..experiments import copies_in_progress, copy_comparison

    pairs = copy_comparison(profile)
    entry = load_spec().get("copy_comparison")
    if not entry:
        return ""
    copy = entry["copy"].upper()
    out = [f"## What the {copy} copy cost\n"]
    if not pairs:
        return "\n".join(out + [f"Measured in the full profile only; this build shows the **{profile}** profile.\n"])
    official = [cell_of(p.official) for p in pairs]
    other = [cell_of(p.other) for p in pairs]
    stored, expected = sum(len(c.runs) for c in official), sum(c.expected for c in official)
    if "official" in copies_in_progress() or stored < expected:
        return "\n".join(out + [f"Pending: {stored} of {expected} runs of this comparison on the official files "
                                 f"are stored. The comparison appears here when all of them are.\n"])
    out.append(f"The same configurations with the same seeds, trained and tested once on the official "
               f"{dataset_title(entry['dataset'])} files and once on the {copy} copy: test accuracy (%) at the "
               f"best-validation epoch, mean ± 95% CI over seeds; the difference is official − {copy} with "
               f"its 95% interval from Welch's t, and p is Welch's two-sided test. Each side is tested on its "
               f"own copy of the test set, as a reader of either copy would test.\n")
    rows, diffs = [], []
    for pair, a, b in zip(pairs, official, other):
        d = welch_difference(a.values(), b.values())
        diffs.append(d)
        interval = (f"{100 * d.mean:+.2f} ({100 * d.low:+.2f} to {100 * d.high:+.2f})"
                    if d.n >= 2 else "–")
        p = welch_p(a.values(), b.values())
        rows.append([pair.label, ", ".join(map(str, pair.official.seeds)), a.text(), b.text(), interval,
                     "–" if math.isnan(p) else f"{p:.3f}"])
    out.append(md_table(["run", "seeds", "official (%)", f"{copy} (%)", f"official − {copy} (points, 95% CI)",
                         "Welch's p"], rows, "llrrrr"))
    better = [pair.label for pair, d in zip(pairs, diffs) if d.n >= 2 and d.low > 0]
    worse = [pair.label for pair, d in zip(pairs, diffs) if d.n >= 2 and d.high < 0]
    mean = sum(d.mean for d in diffs) / len(diffs)
    sentences = [f"Averaged over the {len(pairs)} settings, the official files score {100 * mean:+.2f} points "
                 f"against the {copy} copy."]
    if better:
        sentences.append(f"The official files score higher, with a 95% interval above zero, for: {', '.join(better)}.")
    if worse:
        sentences.append(f"They score lower, with a 95% interval below zero, for: {', '.join(worse)}.")
    undecided = len(pairs) - len(better) - len(worse)
    if undecided:
        sentences.append(f"For the other {undecided} the interval includes zero: at these seeds the copies "
                         f"cannot be told apart there.")
    out.append(" ".join(sentences) + "\n")
    return "\n".join(out)


def reproduce_fragment(profile: str) -> str:
    out = ["## Measured time\n\nSums over the stored runs of each profile, from their provenance: wall time "
           "includes loading data and evaluating, training time only the epochs. The sweep runs one "
           "notebook per CPU core, so the elapsed time of a sweep is about the wall time divided by the "
           "number of cores, plus a few seconds per notebook for loading and figures (each core's "
           "kernel stays running between notebooks, so torch is imported once).\n"]
    rows = []
    env = os.environ.get("LENET_PROFILE")
    per_notebook = {}
    for name in ([active_profile(profile)] if env else PROFILES):
        configs, records = plan_records(name)
        wall = sum(r["provenance"]["wall_seconds"] for r in records.values())
        train = sum(r["provenance"]["train_seconds"] for r in records.values())
        devices = Counter(r["provenance"]["device"] for r in records.values())
        rows.append([f"**{name}**" if name == profile else name, str(len(configs)), str(len(records)),
                     duration(wall) if records else "–", duration(train) if records else "–",
                     ", ".join(f"{d} ({n})" for d, n in devices.most_common()) or "–"])
        if name == profile:
            for key, (nb, _) in configs.items():
                entry = per_notebook.setdefault(nb, [0, 0, 0.0])
                entry[0] += 1
                if key in records:
                    entry[1] += 1
                    entry[2] += records[key]["provenance"]["wall_seconds"]
    out.append(md_table(["profile", "runs planned", "runs stored", "wall time (h:mm:ss)", "training time",
                         "devices (runs)"], rows, "lrrrrl"))
    out.append(f"\nPer notebook in the {profile} profile (a run shared by two notebooks, such as the "
               f"default network, is counted under the first):\n")
    out.append(md_table(["notebook", "runs planned", "runs stored", "wall time"],
                        [[f"`{nb}`", str(a), str(b), duration(c) if b else "–"]
                         for nb, (a, b, c) in per_notebook.items()]))
    return "\n".join(out)


def runs_download(target: Path) -> str:
    """Write every stored run as one CSV into the generated folder `target`; the section linking it."""
    from ..tidy import write_csv

    _, rows = write_csv(target / RUNS_CSV)
    return ("\n## Every run, as a table\n\n"
            f"{{download}}`runs.csv <{GENERATED}/{RUNS_CSV}>`: the {rows:,} runs of the run store, one row per run: "
            "its key and status, every field of its configuration (the data copy among them), the data it saw, its "
            "metrics (accuracies as fractions, losses in nats) and its provenance (date, machine, device, torch, "
            "wall and training seconds). The same table, as a pandas DataFrame, is `lenet_core.runs()`.\n")


def network_section(out_dir: Path) -> str:
    """The introduction's figure of the 1998 network, and a caption whose numbers come from the model."""
    from .. import diagram
    from ..config import RunConfig
    from ..model import LeNet5

    config = RunConfig.classic("mnist")
    model = LeNet5(**config.model_kwargs())
    layers = {layer.name: layer for layer in diagram.network_layers(model)}
    full_c3 = LeNet5(**config.replace(c3_table=False).model_kwargs())
    full = {layer.name: layer for layer in diagram.network_layers(full_c3)}
    mask = diagram.connection_table(model)
    total = sum(layer.params for layer in layers.values())
    convolutions = sum(layer.params for layer in layers.values() if layer.kind == "conv")
    file = "network.png"
    plots.save(diagram.network_figure(config), out_dir / GENERATED / IMAGES / file)
    caption = (f"The 1998 LeNet-5 (`RunConfig.classic`), drawn from `lenet_core.model.LeNet5` itself with one "
               f"forward pass. Above, each layer with its output (feature maps@height x width, or units) and "
               f"its trainable parameters; box heights grow with the log of the number of values a layer "
               f"outputs. Below, which S2 maps each C3 map sees, as in Table I of LeCun et al. (1998): the "
               f"partial table keeps {int(mask.sum())} of the {mask.size} possible S2-to-C3 connections, so C3 "
               f"has {layers['C3'].params:,} parameters where full connections would give it "
               f"{full['C3'].params:,}. C5 alone has {layers['C5'].params:,} of the {total:,} parameters "
               f"({100 * layers['C5'].params / total:.0f}%); the two convolutions together {convolutions:,}.")
    return "## The network\n\n" + figure_md(f"{GENERATED}/{IMAGES}/{file}", "LeNet-5 layers and C3 table", caption)


def intro_fragment(out_dir: Path) -> str:
    import torch

    from .. import data
    from ..config import RunConfig
    from ..experiments import describe_network

    out = [network_section(out_dir), "## The datasets, as the network sees them\n"]
    from ..experiments import published_copy

    for name, spec in DATASETS.items():
        try:
            s = data.splits(name, "cpu", copy=published_copy(name))
        except DataError as exc:
            out.append(f"**{spec.title}**: not prepared here ({exc}).\n")
            continue
        idx = torch.cat([torch.nonzero(s.train_y == k).flatten()[:2] for k in range(len(spec.classes))])
        fig = plots.image_grid(s.train_x[idx], s.mean, s.std, s.train_y[idx], spec.classes, nrow=10)
        file = f"samples_{name}.png"
        plots.save(fig, out_dir / GENERATED / IMAGES / file)
        prov = s.provenance
        del s
        data.splits.cache_clear()  # a normalized CIFAR-10 is most of a gigabyte
        padded = " and padded to 32x32" if prov["shape"][-1] < 32 else ""
        caption = (f"{spec.title}: two training images per class, normalized{padded} as the network gets "
                   f"them, shown back in pixel units. {prov['n_train']:,} training and {prov['n_test']:,} test "
                   f"images; data: {prov['copy']}")
        out.append(figure_md(f"{GENERATED}/{IMAGES}/{file}", f"{spec.title} samples", caption))
    out.append("What to see in these samples: how much of each picture is the object. Digits and garments sit "
               "centred on a plain background; CIFAR-10's objects sit anywhere, at any size, among clutter, and "
               "shifted or mirrored copies of a training image are still images of its class, which is what "
               "the augmentation chapter's shifts and flips imitate.\n")
    out.append("## The two ends of the study\n")
    for title, config in (("The 1998 network", RunConfig.classic("mnist")), ("The modern default", RunConfig())):
        out.append(f"- **{title}**: {describe_network(config)}.")
    return "\n".join(out) + "\n"
