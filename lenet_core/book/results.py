"""The Results page: the headline, the goals, the ladder, and the published numbers beside ours."""

from __future__ import annotations

from pathlib import Path

from .. import plots, tuning
from ..executions import notebook_experiments, pending_configs
from ..experiments import kind, ladder, load_spec, notebook_of_kind, param_sets, pending_rungs, profile_settings
from ..config import SOFTMAX, SUBSTITUTES
from ..train import view_count
from ..stats import prediction_interval, welch_p
from .cells import cell_of, experiment_cell, stored_of
from .changes import one_change_section
from .tuned import tuned_ladder_section
from .executed import notebooks_section
from .found import ladder_family, ladder_figure_note, results_section
from .markdown import GENERATED, IMAGES, cifar_note, dataset_title, figure_md, format_p, md_table, profile_text
from .reference import CHAPTERS, CLASSIC_GOAL, GOALS, PUBLISHED


# The classic notebook's ways of training the 1998 network, from the paper's to the ladder's start, each
# replacing one more of the paper's parts: (how the page names it, its parameter set).
# They are the ladder's first three rungs at the paper's 20 passes (a test keeps them equal).
PAPER = {}
CLASSIC_WAYS = (("as the paper trained it", PAPER), ("with softmax cross-entropy", SOFTMAX),
                ("with the two substitutes", SUBSTITUTES))


def substitutions_section(profile: str) -> str:
    """The paper's output layer and optimizer replaced one at a time (the classic notebook's ways,
    `CLASSIC_WAYS`): per dataset, each way with the step from the one before and its verdict
    (Holm over the steps); how far the runs are while some are being trained."""
    heading = "## The paper's parts replaced one at a time"
    ways = [(label, params) for label, params in CLASSIC_WAYS if params in param_sets("classic")]
    if len(ways) < 2:
        return ""
    intro = (f"{heading}\n\nThe 1998 network as the paper trained it (Euclidean RBF outputs, the MAP criterion, "
             "one example a step with stochastic diagonal Levenberg-Marquardt), then with a linear output layer and "
             "softmax cross-entropy instead of the RBF units and their criterion, then with SGD with momentum on "
             "mini-batches of 32 instead of the paper's optimizer: the ladder's first three rungs, here with the "
             "classic notebook's epochs (the paper's passes) and seeds.\n")
    if any(params not in param_sets("classic", profile) for _, params in ways):
        stored, wanted = stored_of(pending_configs(profile, "classic"))
        return (f"{intro}\nIts runs of the {profile} profile are being trained: {stored} of the {wanted} runs known so "
                f"far are in the store. The comparison appears here once all of them are.\n")
    searched = bool(tuning.factors("classic"))
    out = [intro + "Test accuracy (%) at the best-validation epoch, mean ± 95% CI, at the rate of each way's "
           "recipe" + (" and at its own rate, searched on validation as in the classic notebook" if searched else "")
           + "; Δ: the step from the way before, with its verdict (Holm's correction over the steps of each "
           "dataset).\n"]

    def steps(labels, cells):
        if any(c is None for c in cells):
            return {}
        return {c.label: f"{100 * c.difference.mean:+.2f} ({c.verdict})"
                for c in ladder_family(labels, cells).contrasts if c.verdict != "untested"}

    rows, labels = [], [label for label, _ in ways]
    for d in profile_settings("classic", profile)["datasets"]:
        shared = [experiment_cell("classic", d, profile, params) for _, params in ways]
        recipes = [notebook_experiments("classic", d, profile, **params)[0].config.lr for _, params in ways]
        rates, own = [], []
        for _, params in ways:
            found = tuning.search("classic", d, profile, **params) if searched else None
            rates.append("searching" if found and found.chosen is None else f"{found.chosen:g}" if found else "–")
            own.append(cell_of(tuning.tuned("classic", d, profile, found=found, **params))
                       if found and found.chosen is not None else None)
        shared_steps, own_steps = steps(labels, shared), steps(labels, own)
        for i, label in enumerate(labels):
            row = [dataset_title(d) if i == 0 else "", label, f"{recipes[i]:g}", shared[i].text(),
                   shared_steps.get(label, "–")]
            if searched:
                row += [rates[i], own[i].text() if own[i] is not None else "–", own_steps.get(label, "–")]
            rows.append(row)
    headers = ["dataset", "the 1998 network", "recipe rate", "at the recipe rate", "Δ (points)"]
    if searched:
        headers += ["own rate", "at its own rate", "Δ (points)"]
    out.append(md_table(headers, rows, "llr" + "rr" + ("rrr" if searched else "")))
    return "\n".join(out)


def pending_rungs_note(profile: str, ladders: dict) -> str:
    """What the ladder leaves out in `profile` while some of its rungs are being trained."""
    pending = pending_rungs(profile)
    if not pending or not ladders:
        return ""
    stored, wanted = stored_of(pending_configs(profile, notebook_of_kind("ladder")))
    names = ", ".join(f'"{n}"' for n in pending)
    first = next(iter(ladders.values()))[0].label
    return (f"\nThe ladder's rung{'s' if len(pending) > 1 else ''} {names} {'are' if len(pending) > 1 else 'is'} "
            f"being trained in the {profile} profile ({stored} of the {wanted} runs known so far are stored): until "
            f"they are in, the ladder here starts at \"{first}\", which carries their changes, and the steps they "
            f"measure are missing.\n")


def goals_fragment(profile: str, ladders: dict, cells: dict) -> str:
    """Whether the numbers the study aimed for were reached, said plainly, from the store."""
    out = ["## The goals\n\nWhat this study set out to show, with the number reached (mean test accuracy over "
           f"seeds at the best-validation epoch, {profile} profile). The modernized network keeps LeNet-5's "
           "widths (6 and 16 filters, 120 and 84 units); its best rung is the one with the highest mean.\n"]
    rows = []
    error, slack = CLASSIC_GOAL.error, CLASSIC_GOAL.error_within
    for label, params in reversed(CLASSIC_WAYS):
        if params not in (PAPER, SUBSTITUTES):  # the goal is the paper's network, and with both substitutes
            continue
        goal = f"1998 network {label}: test error within {slack} points of the paper's {error}%"
        if params not in param_sets("classic"):
            continue
        if params not in param_sets("classic", profile):  # its runs are being trained
            stored, wanted = stored_of(c for e in notebook_experiments("classic", CLASSIC_GOAL.dataset, profile, **params)
                                       for c in e.configs)
            rows.append([dataset_title(CLASSIC_GOAL.dataset), goal, f"being trained: {stored} of {wanted} runs stored",
                         "not measured yet"])
            continue
        exp = notebook_experiments("classic", CLASSIC_GOAL.dataset, profile, **params)[0]
        rates = [(f"at its recipe's rate {exp.config.lr:g}", cell_of(exp))]
        if tuning.factors("classic"):  # and at its own rate, chosen on validation, once its search is in
            found = tuning.search("classic", CLASSIC_GOAL.dataset, profile, **params)
            if found.chosen is not None:
                own = tuning.tuned("classic", CLASSIC_GOAL.dataset, profile, found=found, **params)
                rates.append((f"at its own rate {found.chosen:g}, chosen on validation", cell_of(own)))
            else:
                rates.append(("at its own rate: the search is being trained", None))
        for rate, c in rates:
            if c is None or not c.values():
                rows.append([dataset_title(CLASSIC_GOAL.dataset), f"{goal}, {rate}", "–" if c is None else c.text(),
                             "not measured yet"])
                continue
            ours = 100 - 100 * c.summary().mean
            verdict = "**reached**" if abs(ours - error) <= slack else "**not reached**"
            rows.append([dataset_title(CLASSIC_GOAL.dataset), f"{goal}, {rate}",
                         f"{ours:.2f}% test error ({c.text()} accuracy)", verdict])
    for goal in GOALS:
        if goal.dataset not in ladders:
            continue
        measured = [(r, c) for r, c in zip(ladders[goal.dataset], cells[goal.dataset]) if c.values()]
        if not measured:
            rows.append([dataset_title(goal.dataset), f"modernized: at least {goal.modern}%, above {goal.best_published}",
                         "–", "not measured yet"])
            continue
        # The best rung, and apart from it the best that predicts from the image alone (one view):
        # published numbers are one-view numbers, so the book shows both when they differ.
        best = [max(measured, key=lambda rc: rc[1].summary().mean)]
        one_view = [(r, c) for r, c in measured if r.config.test_augment == "none"]
        if best[0][0].config.test_augment != "none" and one_view:
            best.append(max(one_view, key=lambda rc: rc[1].summary().mean))
        reached, verdicts = [], []
        for rung, cell in best:
            mean = 100 * cell.summary().mean
            if mean >= goal.modern and mean > goal.best_published_value:
                verdict = "**reached**"
            elif mean > goal.best_published_value:
                verdict = f"**not reached**: {goal.modern - mean:.2f} points short, above the published number"
            else:
                verdict = f"**not reached**: {goal.modern - mean:.2f} points short"
            if len(cell.runs) < cell.expected:
                verdict += " (not every seed stored yet)"
            views = "" if rung.config.test_augment == "none" else \
                f", {view_count(rung.config.test_augment)} test-time views"
            reached.append(f"{cell.text()} ({rung.label}{views})")
            qualifier = ("with test-time augmentation: " if views else "with one view: ") if len(best) > 1 else ""
            verdicts.append(qualifier + verdict)
        rows.append([dataset_title(goal.dataset), f"modernized: at least {goal.modern}%, above {goal.best_published}",
                     "; ".join(reached), "; ".join(verdicts)])
    rows += published_goal_rows(profile)
    out.append(md_table(["dataset", "goal", "reached (%)", "verdict"], rows, "llrl"))
    return "\n".join(out)


def published_goal_rows(profile: str) -> list[list[str]]:
    """Published setups with a `goal_within`: is our mean within that many points of theirs?"""
    from ..experiments import published_setup, setups

    rows = []
    for name, entry in setups().items():
        within = entry.get("goal_within")
        if within is None or entry["dataset"] not in profile_settings("published", profile)["datasets"]:
            continue
        cell = cell_of(published_setup(name, profile=profile))
        metric, published = entry["published_metric"], entry["published_value"]
        goal = (f"{entry['title']}: within {within:g} point{'' if within == 1 else 's'} of the published "
                f"{100 * published:.2f}%")
        if not cell.values(metric):
            rows.append([dataset_title(entry["dataset"]), goal, cell.text(metric), "not measured yet"])
            continue
        gap = 100 * (cell.summary(metric).mean - published)
        verdict = ("**reached**" if abs(gap) <= within
                   else f"**not reached**: {abs(gap):.2f} points {'below' if gap < 0 else 'above'} "
                        f"(the Published page lists the differences between the protocols)")
        if abs(gap) > within and metric == "test_acc_best" and cell.values("test_acc_last"):
            # the source reports one number per run without saying which epoch's: its last, as Keras prints it?
            last = 100 * (cell.summary("test_acc_last").mean - published)
            verdict += (f"; at the last epoch ours is {cell.summary('test_acc_last').format()}, "
                        f"{abs(last):.2f} points {'below' if last < 0 else 'above'}"
                        + (f", within {within:g}" if abs(last) <= within else ""))
        if abs(gap) > within and len(cell.values(metric)) > 1:  # is the gap more than one run's seed gives?
            low, high = prediction_interval(cell.values(metric))
            inside = low <= published <= high
            verdict += (f"; the published number is one run, and it lies {'inside' if inside else 'outside'} the 95% "
                        f"prediction interval of one more run of ours ({100 * low:.2f} to {100 * high:.2f})"
                        + (": the gap is within what the seed alone moves one run" if inside else
                           ": more than the seed alone explains"))
        if len(cell.runs) < cell.expected:
            verdict += " (not every seed stored yet)"
        rows.append([dataset_title(entry["dataset"]), goal, cell.text(metric), verdict])
    return rows


def ladder_datasets(profile: str) -> list[str]:
    return list(profile_settings("modern", profile)["datasets"])


def results_fragment(profile: str, out_dir: Path) -> str:
    from ..report import ladder_table

    out = []
    datasets = ladder_datasets(profile)
    ladders = {d: ladder(dataset=d, profile=profile) for d in datasets}
    cells = {d: [cell_of(r) for r in ladders[d]] for d in datasets}
    ways = [(label, params) for label, params in CLASSIC_WAYS if params in param_sets("classic", profile)]
    classic = {d: [experiment_cell("classic", d, profile, params) for _, params in ways] for d in datasets}
    top = ladders[datasets[0]][-1].label if datasets else "top rung"
    classic_epochs = profile_settings("classic", profile)["epochs"]
    modern_settings = profile_settings("modern", profile)

    out.append(results_section(profile, ladders, cells, out_dir))
    top_epochs = {}  # the top rung may train longer than the ladder's budget, more on some datasets
    for d in datasets:
        top_epochs.setdefault(ladders[d][-1].config.epochs, []).append(dataset_title(d))
    top_text = "; ".join(f"{e} epochs on {', '.join(names)}" for e, names in top_epochs.items())
    out.append(f"## Headline\n\nProfile **{profile}**. The 1998 network as the classic notebook trains it "
               f"({classic_epochs} epoch{'s' if classic_epochs != 1 else ''}), the same network at the start of "
               f"the ladder with the ladder's budget ({profile_text(modern_settings)}), and the top of the "
               f"ladder (\"{top}\", every change applied{f': {top_text}' if top_text else ''}). "
               f"Test accuracy (%) at the best-validation epoch, "
               f"mean ± 95% CI; gain and Welch's p compare the top rung with the ladder's start.\n")
    if "cifar10" in datasets:
        out.append(cifar_note())
    rows = []
    for d in datasets:
        start, end = cells[d][0], cells[d][-1]
        if start.summary().n and end.summary().n:
            gain = f"{100 * (end.summary().mean - start.summary().mean):+.2f}"
            p = format_p(welch_p(end.values(), start.values()))
        else:
            gain = p = "–"
        published = (f"{100 * CLASSIC_GOAL.reference.value:.2f} ({CLASSIC_GOAL.cited_as})"
                     if d == CLASSIC_GOAL.dataset else "–")
        rows.append([dataset_title(d), *(c.text() for c in classic[d]), start.text(), f"**{end.text()}**", gain, p,
                     published])
    out.append(md_table(["dataset", *(f"LeNet-5 (1998) {label}, classic notebook" for label, _ in ways),
                         f"ladder start ({ladders[datasets[0]][0].label})" if datasets else "ladder start",
                         f"fully modernized ({top})", "gain (points)", "p", "published, 1998 network"], rows))

    out.append(goals_fragment(profile, ladders, cells))
    out.append("## The modernization ladder\n\nEach rung adds one change to the rung above it, so the "
               "difference between neighbouring rungs is what that change adds on top of everything "
               "before it. Δ and p compare each rung with the previous one.\n" + pending_rungs_note(profile, ladders))
    for d in datasets:
        rungs = ladders[d]
        out.append(f"### {dataset_title(d)}\n")
        if any(c.runs for c in cells[d]):
            name = f"ladder_{d}.png"
            plots.ladder_figure([r.label for r in rungs], [c.values() for c in cells[d]],
                                f"The ladder on {dataset_title(d)} ({profile} profile)",
                                out_dir / GENERATED / IMAGES / name, missing=[c.missing for c in cells[d]])
            out.append(figure_md(f"{GENERATED}/{IMAGES}/{name}", f"ladder on {dataset_title(d)}",
                               f"{dataset_title(d)}: test accuracy per rung, bar = mean, whisker = 95% CI, dots = seeds; "
                               f"the top rung is orange; the axis is zoomed to the data."
                               + ladder_figure_note([r.label for r in rungs], cells[d])))
        changes = ladder_table(rungs, {r.label: c.runs for r, c in zip(rungs, cells[d])})["change"].tolist()
        rows = []
        for i, (rung, cell) in enumerate(zip(rungs, cells[d])):
            prev = cells[d][i - 1] if i else None
            if prev is not None and prev.summary().n and cell.summary().n:
                delta = f"{100 * (cell.summary().mean - prev.summary().mean):+.2f}"
                p = format_p(welch_p(cell.values(), prev.values()))
            else:
                delta = p = "–"
            rows.append([rung.label, f"`{changes[i]}`" if i else changes[i], cell.text(), delta, p])
        out.append(md_table(["rung", "change", "test accuracy (%)", "Δ (points)", "p"], rows, "llrrr"))

    out.append(substitutions_section(profile))
    out.append(tuned_ladder_section(profile, out_dir))
    out.append(one_change_section(profile, out_dir))
    out.append("## Beside the published numbers\n\n"
               "Published results with the protocol behind each, and our closest measured setting in the "
               f"{profile} profile. Networks, budgets and protocols differ (most published numbers are one run, "
               "several select on the test set or report validation accuracy), so read the pairs as a sanity "
               "check of the order of magnitude, not as a replication. Our column uses the same metric as the "
               "published one (test, or validation where the source reports validation accuracy). The published "
               "numbers and their protocols are kept in `lenet_core/reference.yml`, the one file every published "
               "number of this study comes from.\n")
    for source in PUBLISHED:
        out.append(f"### {source.name}\n\n*{source.where}*; {source.protocol}.\n")
        rows = []
        for ref in source.results:
            if ref.ours is None:
                ours, setting = "not measured here", "–"
            else:
                notebook, params = ref.ours
                if ref.dataset not in profile_settings(notebook, profile)["datasets"]:
                    ours = f"not in the {profile} profile"
                else:
                    ours = experiment_cell(notebook, ref.dataset, profile, params).text(ref.metric)
                setting = f"{ref.ours_setting} ({{doc}}`{notebook} page <{notebook}>`)" \
                    if notebook in {c.notebook for c in CHAPTERS} | {"published"} else ref.ours_setting
            metric = "validation" if ref.metric.startswith("val") else "test"
            rows.append([dataset_title(ref.dataset), ref.setting, ref.result, ours, metric, setting])
        out.append(md_table(["dataset", "their setting", "their result", "ours (%)", "our metric", "our setting"],
                            rows, "llrrll"))
    out.append(notebooks_section("classic", out_dir, profile, heading="##", prefix="1998 network, ").replace(
        "## The executed notebooks", "## The executed notebooks: the 1998 network"))
    out.append(notebooks_section("modern", out_dir, profile, heading="##", prefix="ladder, ").replace(
        "## The executed notebooks", "## The executed notebooks: the ladder"))
    if any(kind(e) == "one_change" for e in load_spec()["notebooks"].values()):
        out.append(notebooks_section(notebook_of_kind("one_change"), out_dir, profile, heading="##",
                                     prefix="which change, ").replace(
            "## The executed notebooks", "## The executed notebooks: which change matters most"))
    return "\n".join(out)
