"""The Published page: published setups re-run with their own protocol, beside the published numbers."""

from __future__ import annotations

from pathlib import Path

from ..config import SHIFT_PIXELS
from ..experiments import profile_settings
from ..registry import AUGMENTATIONS
from ..stats import reproduced
from .cells import cell_of
from .executed import notebooks_section
from .markdown import cifar_note, dataset_title, md_table


def protocol(config) -> str:
    parts = [f"{config.act}, {config.pool} pooling, {config.init} init", f"{config.optimizer} lr {config.lr:g}",
             f"{config.schedule} schedule", f"batch {config.batch_size}", f"{config.epochs} epochs"]
    if config.batch_norm:
        parts.insert(1, "batch norm")
    if config.augment != "none":
        shift = config.shift_pixels or SHIFT_PIXELS[config.dataset]
        parts.append(f"augment {config.augment}" + (f" (shifts up to {shift} px)" if AUGMENTATIONS[config.augment].shift else ""))
    if config.weight_decay:
        parts.append(f"weight decay {config.weight_decay:g}")
    if config.test_augment != "none":
        parts.append(f"test-time views: {config.test_augment}")
    if not config.normalize:
        parts.append("pixel values in [0, 1] as inputs")
    return ", ".join(parts)


def published_fragment(profile: str, out_dir: Path) -> str:
    """The published setups re-run with their own protocol, beside the published numbers."""
    from ..experiments import published_setup, setups

    out = [f"## Ours beside theirs\n\nProfile **{profile}**. Each setup is trained as published (the full "
           "profile uses the published number of epochs; the shorter profiles shorten every setup alike). "
           "Ours: mean ± 95% CI over seeds, in the metric the source reports. A source reports one run, so "
           "it counts as reproduced when it lies inside the 95% prediction interval of our seeds (where one "
           "more run of ours would fall: mean ± t·s·√(1 + 1/n)). With three seeds t is 4.30, so the interval "
           "is wide: \"yes\" says that our runs do not contradict the published one, not that the means "
           "agree; the difference column says how far apart they are. The differences that remain between "
           "the protocols are listed above the table.\n"]
    rows = []
    for name, entry in setups().items():
        exp = published_setup(name, profile=profile)
        metric = entry["published_metric"]
        difference = verdict = "–"
        if entry["dataset"] in profile_settings("published", profile)["datasets"]:
            cell = cell_of(exp)
            ours = cell.text(metric)
            if cell.values(metric):
                difference = f"{100 * (cell.summary(metric).mean - entry['published_value']):+.2f}"
                verdict = reproduced(cell.values(metric), entry["published_value"])
        else:
            ours = f"not in the {profile} profile"
        last = "–"
        if metric == "test_acc_best" and entry["dataset"] in profile_settings("published", profile)["datasets"]:
            last = cell.text("test_acc_last")
        rows.append([entry["title"], dataset_title(entry["dataset"]), protocol(exp.config), entry["published"],
                     ours, difference, verdict, "validation" if metric.startswith("val") else "test", last])
    out.append(md_table(["setup", "dataset", "protocol (ours)", "published", "ours (%)",
                         "ours − published (points)", "reproduced", "our metric", "ours, last epoch (%)"], rows,
                        "lllrrrllr"))
    out.append("Ours is the test accuracy at the epoch with the lowest validation loss. A source that validates "
               "on the test set every epoch and reports one number may report its last epoch's (what a training "
               "log prints last), so the last column gives ours at the last epoch too; where the two differ, a "
               "network that overfits has passed its best epoch before the end.\n")
    if "cifar10" in profile_settings("published", profile)["datasets"]:
        out.append(cifar_note())
    out.append(notebooks_section("published", out_dir, profile))
    return "\n".join(out)
