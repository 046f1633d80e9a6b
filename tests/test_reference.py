"""The reference file (lenet_core/reference.yml): it loads, a mistake in it is refused with the
file, the entry and the valid keys, and no published number is typed anywhere else."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import yaml

from lenet_core import book, experiments, reference
from lenet_core.schema import SchemaError

ROOT = Path(__file__).resolve().parents[1]
# Where a published number must not be typed: it is read from the reference file there.
SCANNED = sorted((ROOT / "lenet_core").rglob("*.py")) + sorted((ROOT / "notebooks").glob("*.ipynb")) \
    + [ROOT / "notebooks" / "sweep.yml"]
# Parts of the reference file that hold no published number: our own settings, and distances
# (in points) the goals allow.
NOT_PUBLISHED = {"ours", "error_within", "reproduce_within"}
# Published numbers a page cites in its prose, by (file, cell, number as typed): the augmentation
# notebook's introduction quotes the 1998 paper's test errors.
# A number as typed: not part of a longer number or a name; "76.23 %" and "76.23%" alike.
NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(\s?%)?(?!\.?\d)")


def significant(digits: str) -> int:
    """Significant digits of a number as typed: 0.7623 has 4, 99.3 has 3, 10 has 1, 10.00 has 4."""
    kept = digits.replace(".", "").lstrip("0")
    return len(kept if "." in digits else kept.rstrip("0"))


def _g(x: float) -> str:
    return f"{round(x, 10):g}"


def published_forms(tree, where: str = "") -> dict[str, str]:
    """Every published number of the parsed reference file as it would be typed (a fraction, a
    percentage, with or without %), mapped to where in the file it is. A number counts when it has
    at least 3 significant digits, or when it is typed with % (in the file's text)."""
    forms: dict[str, str] = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key not in NOT_PUBLISHED:
                forms.update(published_forms(value, f"{where}.{key}" if where else str(key)))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            forms.update(published_forms(value, f"{where}[{i}]"))
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        if significant(_g(tree)) >= 3:  # a fraction (0.7623), or a percentage where it is above 1
            percent = _g(100 * tree) if tree <= 1 else _g(tree)
            fraction = _g(tree) if tree <= 1 else _g(tree / 100)
            forms.update({fraction: where, percent: where, f"{percent}%": where})
    elif isinstance(tree, str):
        for match in NUMBER.finditer(tree):
            if match.group(2):
                number = match.group(1)
                forms[f"{number}%"] = where
                if significant(number) >= 3:
                    forms.update({number: where, _g(float(number) / 100): where})
    return {form: at for form, at in forms.items() if form.endswith("%") or significant(form) >= 3}


FORMS = published_forms(yaml.safe_load(reference.PATH.read_text()))


def typed_numbers(text: str, forms: dict[str, str] = FORMS) -> list[tuple[str, str]]:
    """(number as typed, where the reference file has it) for each published number in `text`."""
    found = []
    for match in NUMBER.finditer(text):
        typed = match.group(1) + ("%" if match.group(2) else "")
        for form in (typed, match.group(1)):
            if form in forms:
                found.append((match.group(0), forms[form]))
                break
    return found


def lines_of(path: Path):
    """(place, text) per line: a notebook's lines per cell, any other file's as they are."""
    if path.suffix == ".ipynb":
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            for j, line in enumerate(cell.source.splitlines(), 1):
                yield f"cell {i} line {j}", line
    else:
        for j, line in enumerate(path.read_text().splitlines(), 1):
            yield f"line {j}", line


def typed_anywhere(paths) -> list[str]:
    """'file, place: number (where the reference file has it)' for each published number typed in `paths`."""
    found = []
    for path in paths:
        name = str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
        for place, line in lines_of(path):
            for typed, where in typed_numbers(line):
                found.append(f"{name}, {place}: {typed!r} (reference.yml: {where})")
    return found


def test_no_published_number_is_typed_outside_the_reference_file():
    found = typed_anywhere(SCANNED)
    assert not found, "published numbers typed outside lenet_core/reference.yml:\n" + "\n".join(found)


def test_the_number_matcher_finds_a_published_number_however_it_is_typed():
    assert {"76.23", "76.23%", "0.7623", "99.05", "0.9905", "0.95%", "73%", "88%", "0.875", "99.4"} <= set(FORMS)
    for text in ('the top rung beat 76.23 here', 'BIGBALLON: 76.23%.', '"published_value": 0.7623,',
                 'print("(LeCun et al. 1998, MNIST: 0.95 %)")', "about 73% at epoch 10", "f(99.05)"):
        assert typed_numbers(text), text
    for text in ("minus the 10% held out", "lr 0.001, 20 passes", "176.23", "76.234", "v76.23", "0.73",
                 "1.0", "2e-4", "0.5", "99.050.1"):
        assert not typed_numbers(text), text


def test_a_number_typed_in_a_notebook_is_found_with_its_file_cell_and_line(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"),
                                         nbformat.v4.new_markdown_cell("# Title\n\nBIGBALLON reached 76.23 on CIFAR-10.")])
    path = tmp_path / "typed.ipynb"
    nbformat.write(nb, str(path))
    found = typed_anywhere([path])
    assert len(found) == 1 and found[0].startswith(f"{path}, cell 1 line 3: '76.23' (reference.yml: sources.bigballon")


def test_the_reference_file_feeds_the_book_and_the_setups():
    assert book.PUBLISHED is reference.load().sources and len(book.PUBLISHED) == 8
    mnist = next(g for g in book.GOALS if g.dataset == "mnist")
    assert (mnist.modern, mnist.best_published_value) == (99.4, 99.3)
    assert mnist.best_published == "99.3% (boosted LeNet-4, LeCun et al. 1998)"
    assert (reference.load().classic.error, reference.load().classic.error_within) == (0.95, 0.2)
    weight_decay = experiments.setups()["bigballon_weight_decay"]
    assert (weight_decay["published_value"], weight_decay["published"]) == (0.7623, "76.23% test accuracy")
    assert weight_decay["goal_within"] == 1.0 and "goal_within" not in experiments.setups()["d2l_lenet"]
    assert reference.result("d2l_lenet").metric == "val_acc_best"


def _broken(tmp_path, change) -> Path:
    tree = yaml.safe_load(reference.PATH.read_text())
    change(tree)
    path = tmp_path / "reference.yml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def test_an_unknown_key_names_the_file_the_entry_and_the_valid_keys(tmp_path):
    path = _broken(tmp_path, lambda t: t["sources"]["bigballon"]["results"]["bigballon_raw"].update(valeu=0.5))
    with pytest.raises(SchemaError, match=re.escape(
            f"{path}: sources.bigballon.results.bigballon_raw: unknown key 'valeu'; valid: dataset, setting, "
            "result, value, metric, detail, citation, ours")):
        reference.load(path)


def test_a_missing_field_names_the_file_the_entry_and_what_is_required(tmp_path):
    path = _broken(tmp_path, lambda t: t["sources"]["rasbt"]["results"]["rasbt_mnist"].pop("setting"))
    with pytest.raises(SchemaError, match=re.escape(
            f"{path}: sources.rasbt.results.rasbt_mnist: missing 'setting'; required: dataset, setting, result; "
            "valid: dataset")):
        reference.load(path)
    path = _broken(tmp_path, lambda t: t["goals"].pop("epochs_to"))
    with pytest.raises(SchemaError, match=re.escape(f"{path}: goals: missing 'epochs_to'")):
        reference.load(path)


def test_an_id_the_file_does_not_have_is_refused(tmp_path):
    path = _broken(tmp_path, lambda t: t["goals"]["reproduce_within"].update(bigballon_typo=1.0))
    with pytest.raises(SchemaError, match=re.escape(f"{path}: goals.reproduce_within.bigballon_typo: unknown value "
                                                    "'bigballon_typo'; valid: lecun1998_lenet5, ")):
        reference.load(path)
    with pytest.raises(ValueError, match="unknown result 'nope'; valid: lecun1998_lenet5"):
        reference.result("nope")


def test_a_key_given_twice_is_refused(tmp_path):
    path = tmp_path / "reference.yml"
    path.write_text(reference.PATH.read_text().replace("        result: \"76.23%\"\n",
                                                       "        result: \"76.23%\"\n        result: \"76%\"\n"))
    with pytest.raises(SchemaError, match="found the key 'result' twice"):
        reference.load(path)


def test_the_techniques_of_a_chapter_are_checked_and_belong_to_a_chapter(tmp_path):
    from lenet_core.book.reference import CHAPTERS, TECHNIQUES

    assert set(TECHNIQUES) <= {c.notebook for c in CHAPTERS}
    assert [t.name for t in TECHNIQUES["modern_optimizers"]] == ["Muon", "Lion", "Schedule-free AdamW", "SAM"]
    path = _broken(tmp_path, lambda t: t["techniques"]["mixing"][0].update(year=2017))
    with pytest.raises(SchemaError, match=re.escape(f"{path}: techniques.mixing[0]: unknown key 'year'; "
                                                    "valid: name, paper, reports")):
        reference.load(path)
    path = _broken(tmp_path, lambda t: t["techniques"].update(mixing=[]))
    with pytest.raises(SchemaError, match=re.escape(f"{path}: techniques.mixing: expected a list of techniques")):
        reference.load(path)
