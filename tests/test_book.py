"""The book: its generated summaries (fast, from a hand-made store), and the whole site built in
the smoke profile and opened in headless Chromium (`pytest -m book`, a few minutes).

The site test works in a temporary copy of the book (config, toc, authored pages) with its own
run store and executed notebooks, so the repository's `results/`, `book/runs/` and `_build/`
are never touched; only its screenshot is written to `_build/screenshots/results.png`.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from lenet_core import book
from lenet_core.config import SUBSTITUTES, RunConfig
from lenet_core.experiments import experiment, param_sets
from lenet_core.paths import project_root

ROOT = project_root()
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SITE_NOTEBOOKS = ["classic", "pooling", "modern"]  # what the smoke site sweeps: a chapter and the results


# ---------------------------------------------------------------- summaries from a hand-made store

def fake_record(config: RunConfig, accs: list[float], status: str = "ok") -> dict:
    """A stored record as train() writes it, with validation accuracy `accs` per epoch."""
    from lenet_core.store import run_key

    history = [dict(epoch=i + 1, train_loss=0.1, train_acc=min(1.0, a + 0.01), val_loss=0.1, val_acc=a,
                    lr=config.lr, seconds=1.0) for i, a in enumerate(accs)]
    ok = status == "ok"
    return dict(key=run_key(config), config=config.to_dict(),
                data=dict(dataset=config.dataset, title="MNIST", lossy=False, copy="official IDX files"),
                status=status, history=history,
                metrics=dict(test_acc_best=accs[-1] if ok else None, test_acc_last=accs[-1] if ok else None,
                             val_acc_best=max(accs) if ok else None, best_epoch=len(accs),
                             epochs_run=len(accs), stopped_early=False, parameters=61706),
                provenance=dict(date="2026-01-01T00:00:00+00:00", host="test", device="cpu",
                                device_name="x86_64", torch="2", python="3.11", threads=1,
                                train_seconds=2.0, wall_seconds=3.0, train_images_per_second=1000.0))


def store(record: dict) -> None:
    import json

    from lenet_core.store import result_path

    path = result_path(record["key"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


@pytest.mark.usefixtures("mnist_ready")
def test_a_chapter_summary_shows_means_best_p_values_and_what_is_missing(tmp_path):
    pooling = next(c for c in book.CHAPTERS if c.notebook == "pooling")
    avg, mx, sub = (experiment("pooling", dataset="mnist", profile="smoke", pool=p) for p in ("avg", "max", "subsample"))
    store(fake_record(avg.configs[0], [0.90, 0.97]))
    store(fake_record(avg.configs[1], [0.91, 0.975]))
    store(fake_record(mx.configs[0], [0.95, 0.985]))
    store(fake_record(mx.configs[1], [0.96, 0.99]))
    store(fake_record(sub.configs[0], [0.5], status="diverged"))  # seed 1 not stored

    text = book.chapter_fragment(pooling, "smoke", tmp_path)
    accuracy = text.split("### Test accuracy")[1].split("###")[0]
    rows = {line.split("|")[1].strip(): line for line in accuracy.splitlines() if line.startswith("| `pool=")}
    assert "**98.75 ± 3.18 (n=2)**" in rows["`pool=max` (baseline)"]  # best of the column, in bold
    assert "baseline" in rows["`pool=max` (baseline)"]
    assert "97.25 ± 3.18 (n=2) | 0." in rows["`pool=avg`"]  # not bold, with Welch's p
    assert "diverged (1/1)" in text  # subsample: one seed stored, and it diverged
    assert "2.0 (2/2 seeds)" in text and "not reached" in text  # epochs to 98%: max got there, avg not
    assert (tmp_path / book.GENERATED / book.IMAGES / "pooling_mnist.png").stat().st_size > 0
    assert "No executed notebooks of `pooling` yet" in text
    # what was found, first on the page, with the numbers of the comparison in it
    found = text.split("## What we found")[1].split("## Summary")[0]
    assert text.index("## What we found") < text.index("## Summary")
    assert "1 comparison with the baseline (`pool=max`), 2 seeds a side" in found
    assert "`pool=avg` (-1.50 points, 95% CI" in found and "None can be told apart" in found
    assert "Not compared (fewer than two seeds trained to the end on a side): `pool=subsample`" in found
    assert "`pool=subsample`: every seed of 1 failed: seed 0: its loss diverged" in found


@pytest.mark.usefixtures("mnist_ready")
def test_every_page_renders_from_an_empty_store(tmp_path):
    for chapter in book.CHAPTERS:
        text = book.chapter_fragment(chapter, "smoke", tmp_path)
        assert "– (0/2 seeds stored)" in text and "No runs stored yet" in text
        assert "## What we found" in text and "Nothing to compare yet" in text
        assert len([line for line in text.splitlines() if line.startswith("| `")]) >= \
            len(param_sets(chapter.notebook))
    results = book.results_fragment("smoke", tmp_path)
    assert "99.05% (0.95% error)" in results
    # the top rung trains longer than the ladder's budget, and the headline says for how long
    assert ("the same network at the start of the ladder with the ladder's budget (1 epoch" in results
            and 'every change applied: 2 epochs on MNIST)' in results)
    assert "## What we found" in results and "Along the ladder: Nothing to compare yet" in results
    assert "No runs of this profile are stored yet" in book.method_fragment("smoke")
    assert "| **smoke** |" in book.reproduce_fragment("smoke")
    assert not (tmp_path / book.GENERATED).exists()  # no figures without runs


@pytest.mark.usefixtures("mnist_ready")
def test_every_chapter_of_the_published_book_states_what_it_found_with_numbers(monkeypatch):
    """From the committed store (full profile): each chapter, on each dataset, compares its settings
    and says so with numbers; the ladder's seeds that fell back to chance are explained."""
    import re

    from lenet_core.book.cells import cell_of
    from lenet_core.book.found import chapter_findings, chapter_section, failed_seeds, ladder_family, published_chapters
    from lenet_core.experiments import ladder, profile_settings
    from lenet_core.findings import family_sentences
    from lenet_core.paths import project_root

    monkeypatch.setenv("LENET_RESULTS_DIR", str(project_root() / "results"))  # the committed store, read only
    for chapter in published_chapters("full"):
        found = {d: chapter_findings(chapter, d, "full") for d in profile_settings(chapter.notebook, "full")["datasets"]}
        text = chapter_section(found)
        for d, f in found.items():
            assert [c for c in f.family.contrasts if c.verdict != "untested"], (chapter.notebook, d)
        assert len(re.findall(r"[+-]\d+\.\d\d points, 95% CI", text)) >= len(found), chapter.notebook
    rungs = ladder(dataset="mnist", profile="full")
    cells = [cell_of(r) for r in rungs]
    labels = [r.label for r in rungs]
    assert "**Better** than the rung before" in family_sentences(ladder_family(labels, cells), None, "the rung before")
    failures = failed_seeds(labels, cells, "mnist")
    assert "`+ full C3 connections`: seeds" in failures and "of F6's units" in failures


@pytest.mark.usefixtures("mnist_ready")
def test_the_extra_seeds_are_where_validation_left_a_verdict_close(monkeypatch):
    """The specification's more_seeds lists are the baseline and the close contenders that
    `contenders` picks on validation accuracy from the committed 3-seed runs, chapter by chapter."""
    from lenet_core.book.found import contenders
    from lenet_core.experiments import check_notebook
    from lenet_core.paths import project_root

    monkeypatch.setenv("LENET_RESULTS_DIR", str(project_root() / "results"))  # the committed store, read only
    picked = 0
    for chapter in book.CHAPTERS:
        listed = (check_notebook(chapter.notebook).get("more_seeds") or {}).get("full", {})
        for dataset in ("mnist", "fashion_mnist"):
            chosen = contenders(chapter, dataset, "full")
            assert sorted(map(str, listed.get(dataset, []))) == sorted(map(str, chosen)), (chapter.notebook, dataset)
            assert not chosen or chapter.baseline in chosen
            picked += len(chosen)
    assert picked > 0


def test_the_map_constant_is_the_one_validation_chose_on_mnist(monkeypatch):
    """RunConfig.map_j, the paper's criterion's constant, is the value of the classic entry's
    map_j_grid that MNIST's validation accuracy chose in the full profile; until that search is in
    (the full profile's searches being trained), it stays the default and the search is planned."""
    from lenet_core import tuning
    from lenet_core.paths import project_root

    monkeypatch.setenv("LENET_RESULTS_DIR", str(project_root() / "results"))  # the committed store, read only
    found = tuning.j_search("classic", "mnist", "full")
    assert found is not None and RunConfig.map_j in found.grid
    if found.chosen is None:
        assert "full" in tuning.rule()["pending"] and RunConfig.map_j == 10.0
    else:
        assert found.chosen == RunConfig.map_j, "set RunConfig.map_j to the value validation chose"
    quick = tuning.j_search("classic", "mnist", "quick")
    assert quick.chosen is not None  # the quick profile's is in the committed store


@pytest.mark.usefixtures("mnist_ready")
def test_the_goals_say_plainly_what_was_reached_and_what_was_not(tmp_path):
    from lenet_core.experiments import ladder

    rungs = ladder("mnist", "smoke")
    assert rungs[-1].config.test_augment != "none" and rungs[-2].config.test_augment == "none"
    for seed, acc in enumerate((0.9950, 0.9948)):  # the top rung (test-time views), both seeds: above 99.4
        store(fake_record(rungs[-1].configs[seed], [0.99, acc]))
    for seed, acc in enumerate((0.9935, 0.9937)):  # the rung before it (one view): 99.36, short of 99.4
        store(fake_record(rungs[-2].configs[seed], [0.99, acc]))
    store(fake_record(rungs[0].configs[0], [0.97, 0.985]))  # the 1998 start, one seed of two
    classic = experiment("classic", dataset="mnist", profile="smoke", **SUBSTITUTES)  # the two substitutes
    for config in classic.configs:
        store(fake_record(config, [0.98, 0.9890]))  # 1.10% error: within 0.2 points of 0.95%
    text = book.results_fragment("smoke", tmp_path).split("## The goals")[1].split("\n## ")[0]
    rows = [line for line in text.splitlines() if line.startswith("| MNIST")]
    ways, rows = [r for r in rows if "| 1998 network" in r], [r for r in rows if "| 1998 network" not in r]
    assert "with the two substitutes" in ways[0] and "at its recipe's rate 0.05 |" in ways[0]
    assert "1.10% test error" in ways[0] and ways[0].endswith("**reached** |")
    assert "at its own rate: the search is being trained | – | not measured yet |" in ways[1]
    assert "as the paper trained it" in ways[2] and "at its recipe's rate 0.0005 |" in ways[2]
    # the paper's way: the ladder's first rung's run (the same network, epochs and seed), one seed of two
    assert ways[2].endswith("| 1.50% test error (98.50 (n=1), 1/2 seeds stored accuracy) | **not reached** |")
    rows.insert(0, ways[0])
    # the best rung uses test-time views, so the best one-view rung is shown beside it
    assert (f"99.49 ± 0.13 (n=2) ({rungs[-1].label}, 5 test-time views); "
            f"99.36 ± 0.13 (n=2) ({rungs[-2].label})") in rows[1]
    assert rows[1].endswith("with test-time augmentation: **reached**; with one view: "
                            "**not reached**: 0.04 points short, above the published number |")

    store(fake_record(classic.configs[0], [0.98, 0.9840]))  # now 1.35% error: too far from 0.95%
    for rung in rungs[-2:]:
        for seed in (0, 1):
            store(fake_record(rung.configs[seed], [0.99, 0.9920]))  # below 99.4 and below 99.3
    text = book.results_fragment("smoke", tmp_path).split("## The goals")[1].split("\n## ")[0]
    rows = [line for line in text.splitlines() if line.startswith("| MNIST")]
    rows = rows[:1] + [r for r in rows if "| 1998 network" not in r]
    assert rows[0].endswith("**not reached** |")
    assert rows[1].endswith("**not reached**: 0.20 points short |")  # the tie goes to the one-view rung


@pytest.mark.usefixtures("mnist_ready")
def test_the_papers_parts_are_replaced_one_at_a_time_with_each_steps_verdict():
    from lenet_core.book.results import CLASSIC_WAYS, substitutions_section

    for (_, params), acc in zip(CLASSIC_WAYS, (0.90, 0.95, 0.95)):
        for config in experiment("classic", dataset="mnist", profile="smoke", **params).configs:
            store(fake_record(config, [acc - 0.05, acc + 0.002 * config.seed]))
    text = substitutions_section("smoke")  # the searches of each way's own rate: none stored
    assert "| MNIST | as the paper trained it | 0.0005 | 90.10 ± 1.27 (n=2) | – | searching | – | – |" in text
    assert "|  | with softmax cross-entropy | 0.0005 | 95.10 ± 1.27 (n=2) | +5.00 (better) | searching |" in text
    assert "|  | with the two substitutes | 0.05 | 95.10 ± 1.27 (n=2) | +0.00 (undecided) | searching |" in text
    pending = substitutions_section("full")  # the paper's optimizer is being trained there
    assert "runs of the full profile are being trained: 0 of the" in pending and "|" not in pending


@pytest.mark.usefixtures("mnist_ready")
def test_what_the_lossy_copy_cost_is_pending_until_every_official_run_is_stored_then_compared(monkeypatch):
    from lenet_core import experiments

    pairs = experiments.copy_comparison("full")
    assert pairs and all(p.official.seeds == p.other.seeds for p in pairs)
    # pending while the official copy is in progress, whatever is stored
    assert "Pending: 0 of" in book.copy_comparison_fragment("full")
    monkeypatch.setattr(experiments, "copies_in_progress", lambda: [])
    for config in pairs[0].official.configs[:1]:
        store(fake_record(config, [0.70, 0.80]))
    assert f"Pending: 1 of {sum(len(p.official.configs) for p in pairs)}" in book.copy_comparison_fragment("full")
    for i, pair in enumerate(pairs):
        n = len(pair.official.configs)
        for seed, (a, b) in enumerate(zip(pair.official.configs, pair.other.configs)):
            store(fake_record(a, [0.70, 0.780 + 0.002 * seed]))
            # the first: 2 points lower on the copy, same spread; the others: the same values, other seeds
            store(fake_record(b, [0.70, 0.760 + 0.002 * seed if i == 0 else 0.780 + 0.002 * (n - 1 - seed)]))
    text = book.copy_comparison_fragment("full")
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    first = rows[pairs[0].label]
    assert "| +2.00 (+1.54 to +2.46) |" in first and first.rstrip().endswith("| 0.000 |")  # t(0.975, 8) = 2.306
    assert f"The official files score higher, with a 95% interval above zero, for: {pairs[0].label}." in text
    assert f"For the other {len(pairs) - 1} the interval includes zero" in text
    assert "| 0, 1, 2 |" in rows[pairs[-1].label]
    assert "Pending" not in text


def test_the_lossy_copy_comparison_differs_from_its_official_twin_only_in_the_copy():
    from lenet_core import experiments

    for pair in experiments.copy_comparison("full"):
        for a, b in zip(pair.official.configs, pair.other.configs):
            assert (a.data_copy, b.data_copy) == ("official", "jpeg")
            assert a.replace(data_copy="jpeg") == b


@pytest.mark.usefixtures("mnist_ready")
def test_a_published_setup_with_a_goal_is_on_the_goals_table_reached_or_not():
    from lenet_core.experiments import published_setup, setups

    goals = {n: e for n, e in setups().items() if "goal_within" in e}
    assert {"bigballon_augmentation", "bigballon_weight_decay"} <= set(goals)
    near, far = "bigballon_augmentation", "bigballon_weight_decay"
    for name, offset in ((near, -0.009), (far, -0.0346)):
        for seed, config in enumerate(published_setup(name, profile="full").configs):
            store(fake_record(config, [0.5, goals[name]["published_value"] + offset + 0.001 * (seed - 1)]))
    rows = {row[1].split(":")[0]: row for row in book.published_goal_rows("full")}
    assert rows[goals[near]["title"]][3] == "**reached**"
    assert rows[goals[far]["title"]][3].startswith("**not reached**: 3.46 points below")
    assert "within 1 point of the published 76.23%" in rows[goals[far]["title"]][1]
    assert "at the last epoch ours is" in rows[goals[far]["title"]][3]
    # the seeds agree to a tenth of a point: one more run of ours would not give the published number
    assert rows[goals[far]["title"]][3].endswith("the published number is one run, and it lies outside the 95% "
                                                 "prediction interval of one more run of ours (72.27 to 73.27): "
                                                 "more than the seed alone explains")
    for seed, config in enumerate(published_setup(far, profile="full").configs):  # now they spread by 3 points
        store(fake_record(config, [0.5, goals[far]["published_value"] - 0.0346 + 0.03 * (seed - 1)]))
    verdict = {row[1].split(":")[0]: row for row in book.published_goal_rows("full")}[goals[far]["title"]][3]
    assert verdict.startswith("**not reached**: 3.46 points below") and "lies inside the 95% prediction interval" in verdict
    assert verdict.endswith(": the gap is within what the seed alone moves one run")
    # past its best epoch by the end: 1.8 points above at the best-validation epoch, within 1 at the last
    above = "bigballon_baseline"
    for seed, config in enumerate(published_setup(above, profile="full").configs):
        record = fake_record(config, [0.5, goals[above]["published_value"] + 0.018 + 0.001 * (seed - 1)])
        record["metrics"]["test_acc_last"] = goals[above]["published_value"] - 0.003 + 0.001 * (seed - 1)
        store(record)
    verdict = {row[1].split(":")[0]: row for row in book.published_goal_rows("full")}[goals[above]["title"]][3]
    assert verdict.startswith("**not reached**: 1.80 points above")
    assert "at the last epoch ours is 60.11 ± 0.25 (n=3), 0.30 points below, within 1; " in verdict
    assert book.published_goal_rows("smoke") == []  # no CIFAR-10 in the smoke profile


def test_every_published_number_points_at_a_setting_the_sweep_runs():
    for ref in (r for source in book.PUBLISHED for r in source.results):
        if ref.ours is not None:
            notebook, params = ref.ours
            assert params in param_sets(notebook), ref.setting
    for chapter in book.CHAPTERS:
        assert chapter.baseline in param_sets(chapter.notebook), chapter.notebook


def test_the_toc_lists_every_authored_page_and_each_includes_its_fragment():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    pages = {p.stem for p in (ROOT / "book").glob("*.md")}
    assert {Path(f).name for f in files} == pages
    for chapter in book.CHAPTERS:
        assert f"book/{chapter.notebook}" in files
    for page in pages:
        assert f"_generated/{page}.md" in (ROOT / "book" / f"{page}.md").read_text()


# ---------------------------------------------------------------- the site, in a browser

def _run(cmd: list[str], env: dict, timeout: int) -> str:
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(cmd)} failed ({done.returncode}):\n{output[-6000:]}"
    return output


def _book_copy(root: Path) -> dict:
    """A copy of the book's sources in `root`, and the environment that keeps its runs there too."""
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, root / name)
    shutil.copytree(ROOT / "book", root / "book",
                    ignore=shutil.ignore_patterns("runs", book.GENERATED, ".*"))
    # The learning-rate searches would multiply the smoke sweep's runs: the copy's specification
    # leaves them pending (their sections say so), as the full profile's are.
    spec = (ROOT / "notebooks" / "sweep.yml").read_text()
    rule = re.search(r"^lr_search: .*pending: \[full\]\}$", spec, re.M)
    assert rule, "the lr_search rule has moved: update the site test's copy of it"
    spec = spec.replace(rule.group(0), rule.group(0).replace("[full]", "[smoke, full]"))
    # so would the 1998 network trained with the paper's optimizer (one example a step): pending there too
    paper = "      full: [{}, {output: linear, loss: cross_entropy}]\n"
    assert spec.count(paper) == 1, "the classic entry's pending sets have moved: update the site test's copy of them"
    (root / "sweep.yml").write_text(spec.replace(paper, paper.replace("full:", "smoke:") + paper))
    env = {k: v for k, v in os.environ.items() if k != "LENET_PROFILE"}
    env.update(LENET_RESULTS_DIR=str(root / "results"), LENET_CHECKPOINTS_DIR=str(root / "checkpoints"),
               LENET_EXECUTED_DIR=str(root / "book" / "runs"), LENET_PROGRESS="0",
               LENET_SWEEP_SPEC=str(root / "sweep.yml"))
    return env


def _render_and_build(root: Path, env: dict) -> None:
    python, bin_dir = sys.executable, Path(sys.executable).parent
    _run([python, "-m", "lenet_core.book", "render", "--profile", "smoke", "--out", str(root / "book")], env, 300)
    output = _run([str(bin_dir / "jupyter-book"), "build", str(root), "-W", "-n", "--keep-going"], env, 600)
    assert "WARNING" not in output, output[-6000:]
    assert (root / "_build" / "html" / "index.html").exists()


@pytest.fixture(scope="module")
def built_book(tmp_path_factory, mnist_ready):
    """A copy of the book with its own run store: a smoke sweep of a few notebooks (a chapter and the
    results), rendered and built with warnings as errors. Every other chapter has no runs at all."""
    root = tmp_path_factory.mktemp("site")
    env = _book_copy(root)
    _run([sys.executable, "-m", "lenet_core", "sweep", "--profile", "smoke", "--only", *SITE_NOTEBOOKS], env, 600)
    _render_and_build(root, env)
    return root


def _browser_missing() -> str:
    """Why the browser test cannot run here ("" when it can)."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (Debian: apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    return ""


def _assert_a_chapter_without_runs_says_so(root: Path) -> None:
    assert "activation" not in SITE_NOTEBOOKS
    page = (root / "_build" / "html" / "book" / "activation.html").read_text()
    assert "0/2 seeds stored" in page and "No executed notebooks" in page


@pytest.mark.book
def test_the_book_builds_without_warnings_and_a_chapter_without_runs_says_so(request):
    """Where a browser is available the browser test builds the same book and checks this too; one
    build of the book is enough (it is the slowest part of the tests)."""
    if not _browser_missing():
        pytest.skip("the browser test builds this book and checks it")
    _assert_a_chapter_without_runs_says_so(request.getfixturevalue("built_book"))


@pytest.fixture(scope="module")
def site(request):
    """The built copy of the book, served on 127.0.0.1."""
    if _browser_missing():
        pytest.skip(_browser_missing())
    root = request.getfixturevalue("built_book")
    html = root / "_build" / "html"

    handler = functools.partial(_QuietHandler, directory=str(html))
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    pages = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    try:
        yield {"base": f"http://127.0.0.1:{server.server_address[1]}/", "pages": pages, "html": html, "root": root}
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # the browser closed a page mid-transfer
            super().handle_error(request, client_address)


@pytest.fixture(scope="module")
def browser(site):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def _open(browser, url: str):
    """Load `url`; returns (page, problems): console errors, page errors, failed requests, broken images."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    response = page.goto(url, wait_until="load")
    assert response is not None and response.ok, f"{url}: {response and response.status}"
    page.wait_for_load_state("networkidle")
    broken = page.eval_on_selector_all(
        "img", "imgs => imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
    problems += [f"broken image: {src}" for src in broken]
    return page, problems


def _crawl(browser, site) -> dict[str, list[str]]:
    """Every same-site HTML page reachable from the toc pages -> the problems found on it."""
    base = site["base"]
    todo = [urllib.parse.urljoin(base, f"{p}.html") for p in site["pages"]]
    seen, found, links = set(todo), {}, set()
    while todo:
        url = todo.pop(0)
        page, problems = _open(browser, url)
        for href in page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)"):
            target = urllib.parse.urldefrag(href).url
            if not target.startswith(base):
                continue
            links.add(target)
            if target.endswith(".html") and target not in seen and "/_sources/" not in target:
                seen.add(target)
                todo.append(target)
        page.close()
        found[url] = problems
    for target in sorted(links):  # downloads, sources, images: only that they resolve
        try:
            with urllib.request.urlopen(target) as r:
                ok = r.status == 200
        except urllib.error.HTTPError:
            ok = False
        if not ok:
            found.setdefault(target, []).append("link does not resolve (404)")
    return found


@pytest.mark.book
@pytest.mark.slow
def test_the_site_builds_and_every_page_works_in_a_browser(site, browser):
    _assert_a_chapter_without_runs_says_so(site["root"])
    found = _crawl(browser, site)
    bad = {url: p for url, p in found.items() if p}
    assert not bad, "\n".join(f"{url}:\n  " + "\n  ".join(p) for url, p in bad.items())
    notebooks = [u for u in found if "/book/runs/" in u]
    assert len(notebooks) >= len(SITE_NOTEBOOKS), "the executed notebooks are not pages of the site"

    base = site["base"]
    for chapter in book.CHAPTERS:
        page, _ = _open(browser, f"{base}book/{chapter.notebook}.html")
        headers = page.eval_on_selector_all(
            "table", "ts => ts.map(t => Array.from(t.querySelectorAll('th')).map(h => h.innerText.trim()))")
        assert ["setting", "MNIST", "p (MNIST)"] in headers, f"{chapter.notebook}: no summary table in {headers}"
        rows = page.locator("table").first.locator("tbody tr").count()
        assert rows == len(param_sets(chapter.notebook)), chapter.notebook
        assert page.locator("section#what-we-found").count() == 1, f"{chapter.notebook}: no 'What we found'"
        page.close()
    page, _ = _open(browser, f"{base}book/pooling.html")
    found = page.locator("section#what-we-found").inner_text()
    assert "comparisons with the baseline" in found and " points, 95% CI " in found  # swept: numbers
    page.close()
    pooling = urllib.request.urlopen(f"{base}book/pooling.html").read().decode()
    assert "± " in pooling and "(n=2)" in pooling  # pooling was swept: real numbers, not dashes

    page, _ = _open(browser, f"{base}book/results.html")
    assert page.locator("img[src*='ladder_mnist']").count() == 1
    found = page.locator("section#what-we-found").inner_text()
    assert "Along the ladder: " in found and " points, 95% CI " in found
    forest = page.locator("section#what-we-found img[src*='forest']")
    assert forest.count() == 1 and forest.evaluate("i => i.naturalWidth") > 0  # loaded, not broken
    shots = ROOT / "_build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "results.png"), full_page=True)
    page.close()

    page, _ = _open(browser, f"{base}book/intro.html")
    network = page.locator("img[src*='network']")
    assert network.count() == 1 and network.evaluate("i => i.naturalWidth") > 0
    page.close()
    page, _ = _open(browser, f"{base}book/reproduce.html")
    link = page.locator("a:has-text('runs.csv')")
    assert link.count() == 1
    with urllib.request.urlopen(link.evaluate("a => a.href")) as r:
        rows = r.read().decode().strip().splitlines()
    page.close()
    stored = sorted(p.stem for p in (site["root"] / "results").glob("*.json"))
    assert rows[0].startswith("key,status,dataset,") and sorted(line.split(",")[0] for line in rows[1:]) == stored


def test_a_chapter_being_trained_shows_how_many_runs_are_in_and_no_number(monkeypatch):
    """In the full profile the chapters after 2015 are pending: the page says what the papers report,
    how many of the chapter's runs are stored, and states no result until all are."""
    from lenet_core.book.chapters import chapter_fragment
    from lenet_core.book.found import published_chapters
    from lenet_core.executions import pending_configs
    from lenet_core.paths import project_root
    from lenet_core.store import load, run_key

    monkeypatch.setenv("LENET_RESULTS_DIR", str(project_root() / "results"))  # the committed store, read only
    chapter = next(c for c in book.CHAPTERS if c.notebook == "mixing")
    assert chapter not in published_chapters("full") and chapter in published_chapters("quick")
    configs = pending_configs("full", "mixing")
    stored = sum(load(run_key(c)) is not None for c in configs)
    text = chapter_fragment(chapter, "full", project_root() / "book")
    assert f"being trained: {stored} of {len(configs)} are in the store" in text
    assert "## What the papers report" in text and "**Cutout** (DeVries and Taylor 2017)" in text
    assert "What we found" not in text and "±" not in text and "Test accuracy" not in text


def test_the_lossy_note_shows_only_while_the_book_publishes_a_lossy_copy(monkeypatch):
    from lenet_core import experiments
    from lenet_core.book.markdown import cifar_note

    monkeypatch.setattr(experiments, "published_copy", lambda dataset: "jpeg")
    assert "come from a lossy JPEG copy of CIFAR-10" in cifar_note()
    monkeypatch.setattr(experiments, "published_copy", lambda dataset: "official")
    assert cifar_note() == ""


def test_a_last_epoch_chapter_shows_the_last_epoch_and_the_epochs_validation_chose():
    """The weight-averaging chapter: every setting at its last epoch against the baseline's, and the
    best-validation epochs (fewest to most over the seeds), from the records."""
    from lenet_core.book.cells import Cell
    from lenet_core.book.chapters import last_epoch_part
    from lenet_core.book.reference import CHAPTERS

    assert [c.notebook for c in CHAPTERS if c.last_epoch] == ["weight_averaging"]
    cells = []
    for average, last, best_epochs in (("none", [0.90, 0.91, 0.92], [5, 9, 13]), ("swa", [0.95, 0.96, 0.97], [23, 23, 24])):
        records = []
        for seed, (acc, epoch) in enumerate(zip(last, best_epochs)):
            record = fake_record(RunConfig(average=average, seed=seed, epochs=30), [0.5] * 30)
            record["metrics"].update(test_acc_last=acc, best_epoch=epoch)
            records.append(record)
        cells.append(Cell(records, 3))
    text = last_epoch_part(["average=none", "average=swa"], {"mnist": cells}, ["mnist"], 0)
    assert "| `average=none` (baseline) | 91.00 ± 2.48 (n=3) | baseline | 5–13 of 30 |" in text
    assert re.search(r"\| `average=swa` \| 96\.00 ± 2\.48 \(n=3\) \| 0\.0\d+ \| 23–24 of 30 \|", text), text
