"""Markdown helpers of the generated pages: tables, figures, labels, the copy caveat."""

from __future__ import annotations

import math
from pathlib import Path

from ..data import DATASETS


GENERATED = "_generated"  # under the book folder; build output, not committed


IMAGES = "img"
RUNS_CSV = "runs.csv"  # every stored run, one row each, beside the generated pages


def md_table(headers: list[str], rows: list[list[str]], align: str = "") -> str:
    """A pipe table; `align` has one letter per column, l or r (default: first left, others right)."""
    def clean(text) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    align = align or "l" + "r" * (len(headers) - 1)
    lines = ["| " + " | ".join(clean(h) for h in headers) + " |",
             "|" + "|".join(":--" if a == "l" else "--:" for a in align) + "|"]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def setting_label(params: dict) -> str:
    """`act=relu`; several parameters: those that are not zero (all zero: 'none')."""
    if not params:
        return "default"
    shown = {k: v for k, v in params.items() if len(params) == 1 or not (isinstance(v, (int, float))
                                                                         and not isinstance(v, bool) and v == 0)}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) if shown else "none"


def format_p(p: float) -> str:
    if math.isnan(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def figure_md(path: str, alt: str, caption: str) -> str:
    return f"```{{figure}} {path}\n:alt: {alt}\n:width: 100%\n\n{caption}\n```\n"


def profile_text(settings: dict) -> str:
    size = "the whole training part" if not settings["train_size"] else f"the first {settings['train_size']:,} training examples"
    seeds = ", ".join(str(s) for s in settings["seeds"])
    epochs = f"{settings['epochs']} epoch" + ("s" if settings["epochs"] != 1 else "")
    return f"{epochs} on {size}, seeds {seeds}"


def dataset_title(dataset: str) -> str:
    return DATASETS[dataset].title


def duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def cifar_note() -> str:
    """The caveat on pages with CIFAR-10 numbers, while the book publishes a lossy copy of it."""
    from .. import data
    from ..experiments import published_copy

    copy = published_copy("cifar10")
    if copy == data.OFFICIAL:
        return ""
    return (f"\n```{{note}}\nCIFAR-10 numbers on this page come from a lossy {copy.upper()} copy of CIFAR-10 "
            f"(see the Method page), not the official files. They are close to, but not the same as, "
            f"accuracies on official CIFAR-10.\n```\n")


def write_page(path: Path, text: str) -> Path:
    from ..paths import atomic_write

    return atomic_write(path, lambda tmp: tmp.write_text(text))
