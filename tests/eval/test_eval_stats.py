"""Seed statistics: Student-t quantiles against published table values and SciPy, intervals by hand."""

import math

import pytest

from worldsmith.eval.stats import mean_interval, paired_difference, t_cdf, t_quantile

# two-sided 95 % critical values of Student's t (standard tables), by degrees of freedom
T_975 = {1: 12.706204736, 2: 4.302652730, 4: 2.776445105, 9: 2.262157163, 30: 2.042272456}


@pytest.mark.parametrize("df,expected", sorted(T_975.items()))
def test_t_quantile_matches_the_table(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, rel=1e-8)
    assert t_quantile(0.025, df) == pytest.approx(-expected, rel=1e-8)
    assert t_cdf(expected, df) == pytest.approx(0.975, abs=1e-10)


def test_t_quantile_agrees_with_scipy_over_a_grid():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 3, 7, 25, 120):
        for p in (0.51, 0.8, 0.95, 0.999, 0.99999):
            assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-8)


def test_mean_interval_by_hand():
    s = mean_interval([1, 2, 3, 4, 5])
    sd = math.sqrt(2.5)
    half = 2.776445105 * sd / math.sqrt(5)
    assert (s.mean, s.n) == (3.0, 5)
    assert s.sd == pytest.approx(sd, rel=1e-12)
    assert (s.low, s.high) == pytest.approx((3 - half, 3 + half), rel=1e-8)
    assert s.half_width == pytest.approx(half, rel=1e-8)
    wider = mean_interval([1, 2, 3, 4, 5], confidence=0.99)
    assert wider.low < s.low and wider.high > s.high


def test_one_value_has_no_spread_and_bad_input_is_refused():
    s = mean_interval([0.25])
    assert (s.mean, s.low, s.high, s.sd) == (0.25, 0.25, 0.25, 0.0)
    with pytest.raises(ValueError, match="at least one"):
        mean_interval([])
    with pytest.raises(ValueError, match="confidence"):
        mean_interval([1.0, 2.0], confidence=1.0)


def test_paired_difference_uses_the_pairs_not_the_two_means():
    before = [0.10, 0.30, 0.50]
    after = [0.12, 0.321, 0.519]  # differences 0.02, 0.021, 0.019: tight although the runs spread widely
    d = paired_difference(after, before)
    assert d.mean == pytest.approx(0.02, abs=1e-12)
    assert d.half_width == pytest.approx(4.302652730 * 0.001 / math.sqrt(3), rel=1e-8)
    assert d.low > 0
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference([1.0], [1.0, 2.0])
