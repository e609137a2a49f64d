"""compare_predictors: one table of scores, speed-ups and latencies for several predictors on the same rows."""
import pytest

from automm_lite import compare_predictors
from automm_lite.exceptions import ConfigError, DataError


@pytest.fixture
def fitted(fitted_text_predictor):
    """The session's shared fitted text predictor; tests that change one work on a ``fresh_copy`` of it."""
    return fitted_text_predictor


def test_compare_predictors_table(fresh_copy, fitted, bbc_short):
    _, test = bbc_short
    table = compare_predictors({"fp32": fitted, "int8": fresh_copy(fitted).optimize_for_inference("int8")},
                               test.head(20))
    assert list(table.index) == ["fp32", "int8"]
    assert table.loc["fp32", "speedup"] == 1.0 and (table["speedup"] > 0).all()
    assert table.loc["fp32", "accuracy"] == pytest.approx(fitted.evaluate(test.head(20))["accuracy"])
    assert (table[["evaluate_s", "rows_per_s", "one_row_p50_ms"]] > 0).all().all()
    assert (table["one_row_p95_ms"] >= table["one_row_p50_ms"]).all()
    with pytest.raises(DataError, match="at least one"):
        compare_predictors({}, test)
    repeated = compare_predictors({"fp32": fitted}, test.head(20), single_row=False, repeats=3)
    assert repeated.loc["fp32", "accuracy"] == table.loc["fp32", "accuracy"]
    assert "one_row_p50_ms" not in repeated.columns and repeated.loc["fp32", "evaluate_s"] > 0
    with pytest.raises(ConfigError, match=r"compare_predictors: repeats=0 is invalid: expected a value in \[1"):
        compare_predictors({"fp32": fitted}, test, repeats=0)
