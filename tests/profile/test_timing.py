"""The timing harness: one row per timed call, inputs built outside the timed region."""

import time

import numpy as np
import pytest

from recsys.errors import ConfigError
from recsys.pipeline import StageCall
from recsys.profile.timing import PROFILE_COLUMNS, profile_stage, profile_stages, summarize_profile


def slow_input_call(name="ranking", sleep_s=0.02):
    """A stage whose inputs are slow to build but whose work is instant."""
    built = []

    def make_input(batch_size, rng):
        time.sleep(sleep_s)
        built.append(batch_size)
        return rng.random(batch_size)

    return StageCall(name, "fake", {}, make_input, lambda x: x.sum(), n_in=50, n_out=10), built


def test_one_row_per_timed_call_with_the_stage_description():
    call, _ = slow_input_call()
    table = profile_stage(call, batch_sizes=[4, 1, 4], repeats=5, warmup=1, progress=False)
    assert tuple(table.columns) == PROFILE_COLUMNS
    # Duplicate batch sizes are profiled once, in increasing order.
    assert table["batch_size"].tolist() == [1] * 5 + [4] * 5
    assert set(table["stage"]) == {"ranking"}
    assert set(table["n_candidates"]) == {50}
    assert (table["service_ms"] > 0).all()


def test_building_inputs_is_not_timed():
    # Each input takes 20 ms to build; the work itself is a sum of 8 numbers.
    call, built = slow_input_call(sleep_s=0.02)
    table = profile_stage(call, batch_sizes=[8], repeats=4, warmup=0, n_inputs=2, progress=False)
    assert built == [8, 8]  # two inputs drawn up front, reused round-robin
    assert table["service_ms"].max() < 20.0


def test_profile_stages_concatenates_and_summarizes():
    a, _ = slow_input_call("retrieval", 0.0)
    b, _ = slow_input_call("ranking", 0.0)
    table = profile_stages([a, b], batch_sizes=[1, 2], repeats=3, warmup=0, progress=False)
    summary = summarize_profile(table)
    assert summary[["stage", "batch_size"]].values.tolist() == [
        ["ranking", 1],
        ["ranking", 2],
        ["retrieval", 1],
        ["retrieval", 2],
    ]
    assert (summary["samples"] == 3).all()
    np.testing.assert_allclose(
        summary["per_request_ms"], summary["mean_ms"] / summary["batch_size"]
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_sizes": []}, "batch_sizes"),
        ({"batch_sizes": [0, 4]}, "batch_sizes"),
        ({"batch_sizes": [1], "repeats": 0}, "repeats"),
        ({"batch_sizes": [1], "warmup": -1}, "warmup"),
    ],
)
def test_bad_profile_settings(kwargs, match):
    call, _ = slow_input_call(sleep_s=0.0)
    with pytest.raises(ConfigError, match=match):
        profile_stage(call, progress=False, **kwargs)
