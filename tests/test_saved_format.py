"""A predictor saved by an earlier version keeps loading, with the same predictions (the fixture is written by
``tests/fixtures/make_saved_format.py``, once per format version, and kept)."""
import json
from pathlib import Path

import pandas as pd
import pytest

from automm_lite import Predictor
from automm_lite.io import FORMAT_VERSION

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SAVED = sorted(FIXTURES.glob("saved_format_*/"))


def test_there_is_a_fixture_of_todays_format():
    versions = [json.loads((folder / "predictor.json").read_text())["format_version"] for folder in SAVED]
    assert FORMAT_VERSION in versions, "a new format needs its fixture: python tests/fixtures/make_saved_format.py"


@pytest.mark.parametrize("folder", SAVED, ids=[folder.name for folder in SAVED])
def test_a_saved_predictor_of_any_format_loads_and_predicts_as_it_did(folder, tmp_path):
    import shutil

    copy = shutil.copytree(folder, tmp_path / folder.name)  # loading must not need to write next to the fixture
    predictor = Predictor.load(copy, verbosity=0)
    rows = pd.read_csv(FIXTURES / f"{folder.name}_rows.csv")
    expected = pd.read_csv(FIXTURES / f"{folder.name}_proba.csv")
    got = predictor.predict_proba(rows).astype("float64")
    assert list(got.columns.astype(str)) == list(expected.columns)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected, check_names=False, atol=1e-6, rtol=0,
                                  check_column_type=False)
