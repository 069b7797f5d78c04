"""Age -> group mapping at every boundary (the seed's precedence bug made 'senior' unreachable)."""

import numpy as np
import pytest

from age_node.core import ages


@pytest.mark.parametrize(
    'age, group',
    [
        (5, 'child'),
        (12, 'child'),
        (19, 'child'),
        (19.99, 'child'),
        (20, 'adult'),
        (20.0, 'adult'),
        (45, 'adult'),
        (59, 'adult'),
        (59.9, 'adult'),
        (60, 'senior'),
        (60.0, 'senior'),
        (75, 'senior'),
        (89, 'senior'),
        (95, 'senior'),
    ],
)
def test_age_to_group_boundaries(age, group):
    assert ages.group_label(ages.age_to_group(age)) == group


def test_every_group_is_reachable_from_real_ages():
    reached = {ages.age_to_group(a) for a in range(5, 90)}
    assert reached == {ages.GROUP_CHILD, ages.GROUP_ADULT, ages.GROUP_SENIOR}


def test_non_finite_age_is_refused():
    with pytest.raises(ValueError):
        ages.age_to_group(float('nan'))


def test_bins_cover_5_to_89_in_five_year_steps():
    assert ages.NUM_BINS == 17
    assert ages.BIN_LOWER_YEARS[0] == 5 and ages.BIN_LOWER_YEARS[-1] == 85
    assert [ages.age_to_bin(a) for a in (5, 9.9, 10, 19, 20, 59, 60, 85, 89)] == [
        0,
        0,
        1,
        2,
        3,
        10,
        11,
        16,
        16,
    ]
    assert ages.age_to_bin(2) == 0 and ages.age_to_bin(120) == 16


def test_bins_never_straddle_a_group_boundary():
    for lower, group in zip(ages.BIN_LOWER_YEARS, ages.BIN_GROUP, strict=True):
        upper = min(lower + ages.BIN_WIDTH, ages.MAX_AGE + 1) - 0.01
        assert ages.age_to_group(lower) == ages.age_to_group(upper) == group
    assert list(ages.BIN_GROUP).count(0) == 3 and list(ages.BIN_GROUP).count(2) == 6


def test_group_probabilities_and_expected_age():
    one_hot_senior = np.zeros(17)
    one_hot_senior[ages.age_to_bin(72)] = 1.0
    assert np.allclose(ages.group_probabilities(one_hot_senior), [0, 0, 1])
    assert ages.expected_age(one_hot_senior) == pytest.approx(72.5)
    uniform = np.full(17, 1 / 17)
    assert ages.group_probabilities(uniform).sum() == pytest.approx(1.0)
    assert np.allclose(ages.group_probabilities(uniform), [3 / 17, 8 / 17, 6 / 17])


def test_group_labels_round_trip():
    for group, label in enumerate(('child', 'adult', 'senior')):
        assert ages.group_from_label(label.upper()) == group
    with pytest.raises(ValueError):
        ages.group_from_label('teen')
