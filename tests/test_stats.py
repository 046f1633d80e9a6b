import math

import pytest

from lenet_core.stats import prediction_interval, reproduced, summarize, welch_difference, welch_p


def test_t_interval_of_three_values():
    s = summarize([1.0, 2.0, 3.0])
    assert (s.mean, s.n, s.std) == (2.0, 3, 1.0)
    assert s.half_width == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)  # t(0.975, 2) = 4.3027
    assert (s.low, s.high) == pytest.approx((2 - s.half_width, 2 + s.half_width))


def test_one_value_has_no_interval_and_none_is_skipped():
    s = summarize([0.9, None])
    assert s.n == 1 and math.isnan(s.half_width)
    assert s.format() == "90.00 (n=1)"
    assert summarize([]).format() == "–"


def test_format_in_percent():
    assert summarize([0.99, 0.99]).format() == "99.00 ± 0.00 (n=2)"


def test_welch_p():
    assert welch_p([0.90, 0.91, 0.92], [0.95, 0.96, 0.97]) < 0.01
    assert welch_p([0.90, 0.92, 0.91], [0.91, 0.90, 0.92]) == pytest.approx(1.0)
    assert math.isnan(welch_p([0.9], [0.8, 0.7]))
    assert welch_p([0.5, 0.5], [0.5, 0.5]) == 1.0


def test_welch_p_matches_scipy():
    np = pytest.importorskip("numpy")
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for na, nb in ((2, 2), (3, 5), (5, 3), (10, 4)):
        a, b = rng.normal(0.9, 0.01, na), rng.normal(0.91, 0.02, nb)
        assert welch_p(a, b) == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-9)
        assert summarize(a).half_width == pytest.approx(
            stats.t.ppf(0.975, na - 1) * a.std(ddof=1) / math.sqrt(na), rel=1e-9)


def test_prediction_interval_for_one_more_run():
    # mean 2, s = 1, n = 3: 2 ± t(0.975, 2) · 1 · sqrt(1 + 1/3)
    half = 4.302653 * math.sqrt(4 / 3)
    assert prediction_interval([1.0, 2.0, 3.0]) == pytest.approx((2 - half, 2 + half), rel=1e-6)
    assert all(math.isnan(v) for v in prediction_interval([0.9]))
    # wider than the confidence interval of the mean: it covers one run, not the average of many
    assert prediction_interval([1.0, 2.0, 3.0])[1] > summarize([1.0, 2.0, 3.0]).high


def test_a_published_run_is_reproduced_inside_the_prediction_interval_only():
    ours = [0.74, 0.75, 0.76]  # mean 0.75, s = 0.01: interval 0.75 ± 0.0497
    assert reproduced(ours, 0.79).startswith("yes (95% prediction interval 70.03 to 79.97")
    assert reproduced(ours, 0.80) == "**no** (95% prediction interval 70.03 to 79.97)"
    assert reproduced(ours, 0.70).startswith("**no**")
    assert reproduced([0.75], 0.75) == "–" and reproduced([], 0.75) == "–"


def test_welch_difference_interval_matches_scipy_and_agrees_with_its_p():
    np = pytest.importorskip("numpy")
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    for na, nb in ((3, 3), (5, 5), (3, 5)):
        a, b = rng.normal(0.78, 0.01, na), rng.normal(0.76, 0.02, nb)
        d = welch_difference(a, b)
        ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
        assert (d.low, d.high) == pytest.approx((ci.low, ci.high), rel=1e-9)
        assert d.mean == pytest.approx(a.mean() - b.mean()) and d.n == min(na, nb)
        # the interval excludes 0 exactly when p < 0.05
        assert (d.low > 0 or d.high < 0) == (welch_p(a, b) < 0.05)
    assert math.isnan(welch_difference([0.9], [0.8, 0.7]).half_width)
    assert welch_difference([], [0.8]).n == 0
