import math

import pytest

from lenet_core.stats import summarize, welch_p


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
