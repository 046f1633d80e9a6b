"""The book's generated pages: tables and figures read from the run store (nothing is trained).

`render(profile)` writes Markdown fragments and PNG figures into `book/_generated/`.
The authored pages in `book/` hold the prose and pull a fragment in with
MyST's `{include}`, so the text is reviewed in git and the numbers come from
whatever the store holds when the book is built. An empty store renders too:
every table then says what is missing and which command fills it.

    python -m lenet_core book render --profile quick

One module per idea: `reference` (chapters, goals, published numbers), `cells`
(a setting's stored runs as the numbers of a table cell), `markdown` (tables,
figures, labels), `executed` (links to the executed notebooks), `found` (the
"What we found" sections and the forest plot, from `lenet_core.findings`), one
module per page family (`chapters`, `results`, `published`, `method`), and
`render`, which also writes every stored run as `_generated/runs.csv`. The
figures are drawn by `lenet_core.plots` and `lenet_core.diagram`.

Per technique chapter the fragment has: what was found (each setting against the
chapter's baseline, Holm-corrected, and the seeds that failed), test accuracy per setting and dataset
(mean ± 95% CI over seeds, best per column in bold, Welch's p against the
chapter's baseline), a figure per dataset (bars with error bars, validation
curves), epochs to a target validation accuracy, the train-validation gap at
the last epoch, and links to the executed notebooks in `book/runs/` (with a
hidden toctree, so each one is a page of the book).
"""

from .chapters import chapter_fragment
from .markdown import GENERATED, IMAGES, RUNS_CSV
from .method import copy_comparison_fragment, data_fragment, intro_fragment, method_fragment, reproduce_fragment
from .published import protocol, published_fragment
from .reference import CHAPTERS, GOALS, PUBLISHED, Chapter
from .render import render
from .results import goals_fragment, published_goal_rows, results_fragment

__all__ = ["CHAPTERS", "GENERATED", "GOALS", "IMAGES", "PUBLISHED", "RUNS_CSV", "Chapter", "chapter_fragment",
           "copy_comparison_fragment", "data_fragment", "goals_fragment", "intro_fragment",
           "method_fragment", "protocol", "published_fragment", "published_goal_rows", "render",
           "reproduce_fragment", "results_fragment"]
