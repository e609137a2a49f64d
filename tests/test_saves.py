"""Saves are atomic and safe: a save killed at any moment leaves the previous predictor loadable, loading reads
only JSON, safetensors and tokenizer files, and nothing in a save folder leads out of it."""
import ast
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from automm_lite import Predictor
from automm_lite.exceptions import DataError
from automm_lite.io import recover_interrupted_save

SAVE_FOREVER = """if True:
    import sys
    from automm_lite import Predictor
    versions = [Predictor.load(folder, verbosity=0) for folder in sys.argv[1:3]]
    print("ready", flush=True)
    i = 0
    while True:
        versions[i % 2].save(sys.argv[3])
        i += 1
"""
KILLS = 5  # docs/dev/reliability.md quotes this


@pytest.fixture(scope="module")
def second_version(bbc_short, tiny_hp, tmp_path_factory):
    """Another fit on the same rows, with other predictions."""
    train, _ = bbc_short
    return Predictor("label", path=str(tmp_path_factory.mktemp("v2") / "v2"), verbosity=0).fit(
        train, seed=3, hyperparameters={**tiny_hp, "optimization.max_epochs": 2})


@pytest.mark.slow
def test_a_save_killed_at_any_moment_leaves_a_loadable_predictor(fitted_text_predictor, second_version, bbc_short,
                                                                  fresh_copy, repo_root, tmp_path):
    _, test = bbc_short
    expected = [tuple(p.predict(test)) for p in (fitted_text_predictor, second_version)]
    assert expected[0] != expected[1]  # the two versions can be told apart
    target = tmp_path / "served"
    fresh_copy(fitted_text_predictor).save(target)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo_root), os.environ.get("PYTHONPATH", "")])}
    rng, mid_save = random.Random(0), 0
    for _ in range(KILLS):
        saver = subprocess.Popen([sys.executable, "-c", SAVE_FOREVER, fitted_text_predictor.path,
                                  second_version.path, str(target)], stdout=subprocess.PIPE, env=env, text=True)
        assert saver.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 1.0))
        saver.send_signal(signal.SIGKILL)
        saver.wait()
        mid_save += any(tmp_path.glob(".served.saving-*"))  # killed while writing a new version
        loaded = Predictor.load(target, verbosity=0)
        assert tuple(loaded.predict(test)) in expected
    assert mid_save >= 1  # at least one kill fell inside a save, not between two


def test_a_save_interrupted_between_its_two_renames_is_rolled_back(fitted_text_predictor, bbc_short, fresh_copy,
                                                                    tmp_path):
    # where the system has no atomic folder exchange, a save renames the old version aside, then the new one in
    _, test = bbc_short
    target = tmp_path / "served"
    fresh_copy(fitted_text_predictor).save(target)
    os.replace(target, tmp_path / ".served.old-1a2b3c4d")  # killed right after the first rename
    assert recover_interrupted_save(target) and (target / "predictor.json").is_file()
    assert Predictor.load(target, verbosity=0).predict(test).equals(fitted_text_predictor.predict(test))
    assert not recover_interrupted_save(target)  # nothing to do when the predictor is in place


def test_a_later_save_removes_what_killed_saves_left(fitted_text_predictor, fresh_copy, tmp_path):
    target = tmp_path / "served"
    own = fresh_copy(fitted_text_predictor)
    own.save(target)
    for name in (".served.old-deadbeef", ".served.saving-deadbeef"):  # killed saves of two hours ago
        (tmp_path / name).mkdir()
        os.utime(tmp_path / name, (time.time() - 7200, time.time() - 7200))
    (tmp_path / ".served[1].old-deadbeef").mkdir()  # another predictor's: a name is not a pattern
    young = tmp_path / ".served.saving-cafe0000"  # maybe another process's save in progress: kept
    young.mkdir()
    own.save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".served.saving-cafe0000", ".served[1].old-deadbeef",
                                                           "served"]


def test_loading_reads_no_pickle_and_runs_no_remote_code(repo_root):
    package = repo_root / "automm_lite"
    for source in package.rglob("*.py"):
        text = source.read_text()
        assert not re.search(r"^\s*import pickle|^\s*import dill|cloudpickle|joblib\.load", text, flags=re.M), source
        assert not re.search(r"trust_remote_code\s*=\s*True", text), source
        for node in ast.walk(ast.parse(text)):  # every torch.load(...) call, however its arguments are nested
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                keywords = {k.arg: k.value for k in node.keywords}
                weights_only = keywords.get("weights_only")
                assert isinstance(weights_only, ast.Constant) and weights_only.value is True, (
                    source, node.lineno, ast.unparse(node))


@pytest.mark.parametrize("damage, message", [
    (lambda folder, outside: _edit_backbones(folder, ["../../etc"]), "names a backbone '../../etc'"),
    (lambda folder, outside: _edit_backbones(folder, ["/tmp"]), "names a backbone '/tmp'"),
    (lambda folder, outside: _link(folder / "hf_text" / "vocab.txt", outside), "is a link"),
    (lambda folder, outside: _link(folder / "model.safetensors", outside), "is a link"),
    (lambda folder, outside: _link(folder / "predictor.json", outside), "is a link"),
])
def test_nothing_in_a_save_folder_leads_out_of_it(fitted_text_predictor, tmp_path, damage, message):
    folder = tmp_path / "copy"
    shutil.copytree(fitted_text_predictor.path, folder)
    outside = tmp_path / "outside.txt"
    outside.write_text("{}")
    damage(folder, outside)
    with pytest.raises(DataError, match=re.escape(message)):
        Predictor.load(folder, verbosity=0)


def _edit_backbones(folder: Path, names):
    import json

    metadata = json.loads((folder / "predictor.json").read_text())
    metadata["backbones"] = names
    (folder / "predictor.json").write_text(json.dumps(metadata))


def _link(file: Path, outside: Path):
    if file.exists():
        shutil.copy(file, outside)
        file.unlink()
    file.symlink_to(outside)
