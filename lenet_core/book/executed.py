"""Links from a page to the executed notebooks behind it (`book/runs/`), with a hidden toctree."""

from __future__ import annotations

import json
from pathlib import Path

from ..data import DATASETS
from ..experiments import param_sets, profile_settings
from .markdown import dataset_title, md_table, setting_label


def executed_notebooks(out_dir: Path, notebook: str) -> dict[tuple[str, str], Path]:
    """(dataset, file stem) -> executed notebook under `<out_dir>/runs/<notebook>/`, finished ones only."""
    found = {}
    for path in sorted((out_dir / "runs" / notebook).glob("*/*.ipynb")):
        if path.name.startswith(".") or path.name.endswith(".failed.ipynb"):
            continue  # in flight, or kept for debugging
        found[(path.parent.name, path.stem)] = path
    return found


def executed_profile(path: Path) -> str | None:
    try:
        return json.loads(path.read_text())["metadata"]["papermill"]["parameters"].get("profile")
    except (OSError, ValueError, KeyError, AttributeError):
        return None


def notebooks_section(notebook: str, out_dir: Path, profile: str, heading: str = "##", prefix: str = "") -> str:
    """A table linking the executed notebooks behind a chapter, plus a hidden toctree for them
    (entries titled "<prefix><dataset>: <setting>", the titles the sidebar shows)."""
    from ..jobs import slug

    found = executed_notebooks(out_dir, notebook)
    text = f"{heading} The executed notebooks\n\n"
    if not found:
        return text + (f"No executed notebooks of `{notebook}` yet: `make sweep PROFILE={profile}` "
                       f"writes them into `book/runs/{notebook}/`.\n")
    datasets = list(profile_settings(notebook, profile)["datasets"])
    datasets += sorted({d for d, _ in found if d not in datasets and d in DATASETS})
    sets = param_sets(notebook, profile)
    known = {slug(p): p for p in sets}
    rows, entries = [], []
    for params in sets:
        row = [f"`{setting_label(params)}`"]
        for d in datasets:
            path = found.get((d, slug(params)))
            if path is None:
                row.append("–")
                continue
            docname = f"runs/{notebook}/{d}/{path.stem}"
            other = executed_profile(path)
            note = f" ({other} profile)" if other and other != profile else ""
            row.append(f"{{doc}}`notebook{note} <{docname}>`")
            entries.append(f"{prefix}{dataset_title(d)}: {setting_label(params)} <{docname}>"
                           if len(sets) > 1 else f"{prefix}{dataset_title(d)} <{docname}>")
        rows.append(row)
    text += ("Each notebook below ran with one setting on one dataset; it trains or loads all seeds, "
             "shows their learning curves and the diagnostics of the technique.\n\n")
    text += md_table(["setting"] + [dataset_title(d) for d in datasets], rows, "l" * (1 + len(datasets)))
    extra = [(d, s) for (d, s) in found if s not in known or d not in datasets]
    if extra:
        text += "\nOther executed notebooks (settings no longer in `notebooks/sweep.yml`):\n\n"
        for d, s in extra:
            docname = f"runs/{notebook}/{d}/{s}"
            text += f"- {{doc}}`{d}: {s} <{docname}>`\n"
            entries.append(f"{prefix}{d}: {s} <{docname}>")
    text += "\n```{toctree}\n:hidden:\n:titlesonly:\n\n" + "\n".join(entries) + "\n```\n"
    return text
