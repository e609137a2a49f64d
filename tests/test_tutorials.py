"""The tutorials run top to bottom (offline data, small budget) in the venv's kernel and show what they promise."""
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"


def execute(nb, workdir):
    # "python3" is ipykernel's own spec, which jupyter_client starts with this interpreter (sys.executable).
    NotebookClient(nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}).execute()
    return nb


def run_tutorial(name, tmp_path, monkeypatch):
    """Execute a copy of ``tutorials/<name>`` in ``tmp_path`` (models are saved there) and return it."""
    monkeypatch.setenv("AUTOMM_LITE_TUTORIAL_BUDGET", "small")
    monkeypatch.setenv("AUTOMM_LITE_TUTORIAL_DATA", "offline")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    copy = tmp_path / name
    shutil.copy(TUTORIALS / name, copy)
    nb = execute(nbformat.read(copy, as_version=4), tmp_path)
    nbformat.write(nb, copy)  # kept for a look when an assertion fails
    return nb


def text_of(nb):
    """Everything the notebook printed or displayed as text, in order. A printed line may arrive in several
    stream outputs (the kernel flushes when it flushes), so streams are joined as they were written."""
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                parts.append(output.text)
            elif "data" in output:
                parts.append("\n" + output.data.get("text/markdown", "") + output.data.get("text/plain", "") + "\n")
        parts.append("\n")
    return "".join(parts)


def images_in(nb):
    return [o for cell in nb.cells for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]


def test_kernel_is_this_python(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys; print(sys.prefix)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    assert text_of(execute(nb, tmp_path)).strip() == sys.prefix


def test_tutorials_use_the_native_python3_kernel():
    for path in sorted(TUTORIALS.glob("*.ipynb")):
        assert nbformat.read(path, as_version=4).metadata.kernelspec.name == "python3", path.name


def test_quickstart(tmp_path, monkeypatch):
    text = text_of(run_tutorial("quickstart.ipynb", tmp_path, monkeypatch))
    accuracy = float(re.search(r"\{'accuracy': ([0-9.]+)\}", text).group(1))
    assert accuracy > 0.3, accuracy  # 5 topics: chance is 0.2
    assert "same predictions: True" in text
    assert re.search(r"100 rows in [0-9.]+ s \([0-9,.]+ rows/s; per batch p50", text)  # the timing report
    assert "optimization.max_epochs" in text  # the keys table
    assert "Did you mean" in text and "optim" in text  # the typo's error
    assert (tmp_path / "my_predictor" / "predictor.json").is_file()


def test_distillation(tmp_path, monkeypatch):
    from automm_lite.config import iter_fields

    nb = run_tutorial("distillation.ipynb", tmp_path, monkeypatch)
    text = text_of(nb)
    for key, _, _ in iter_fields():
        if key.startswith("distiller."):
            assert f"`{key}`" in text, key
    assert "Distillation objective" in text and "computed once" in text
    assert "Distillation recipe" in text  # the fit log says which recipe ran and why
    for model in ("teacher", "no-distill", "distilled: autogluon", "distilled: auto"):  # the table's rows
        assert re.search(rf"^ *{model} +[01]\.\d{{3}} ", text, flags=re.M), model
    assert len(images_in(nb)) == 1  # the accuracy vs. latency plot, rendered inline


def test_pawsx_multilingual(tmp_path, monkeypatch):
    text = text_of(run_tutorial("pawsx_multilingual.ipynb", tmp_path, monkeypatch))
    number = r"(-?[0-9.]+|NaN)"
    # test pairs, teacher, no-distill, distilled, ratio, then "+ unlabeled" and "ratio +u" on the offline path
    rows = re.findall(rf"^(\w+) +(\d+) +{number} +{number} +{number} +{number} +{number} +{number}$", text, flags=re.M)
    languages = {row[0] for row in rows} - {"all"}
    assert len(languages) >= 4 and "all" in {row[0] for row in rows}, rows
    assert all(0 <= float(score) <= 1 for row in rows for score in (*row[2:5], row[6]))
    # the default call chooses its recipe: synthetic pairs without unlabeled rows, the teacher's labels with them
    assert re.search(r"^recipe auto:\n  no unlabeled rows: \d+ synthetic rows per training row", text, flags=re.M)
    assert re.search(r"^recipe auto:\n  the teacher labels the unlabeled rows", text, flags=re.M)
    speedup = float(re.search(r"evaluates ([0-9.]+)x faster than the teacher", text).group(1))
    assert speedup > 1, speedup  # 3 of the teacher's 12 layers


def test_student_search(tmp_path, monkeypatch):
    nb = run_tutorial("student_search.ipynb", tmp_path, monkeypatch)
    text = text_of(nb)
    assert "ConfigError: num_layers=8 is more than the teacher can give" in text
    assert re.search(r"default space: \{'num_layers': \[1, 2, 3, 4\]", text)
    trials = re.findall(r"^ +(\d) +layers [\d,]+ \| heads \d+ \| hidden \d+ \| ffn \d+ +[01]\.\d+ ", text, flags=re.M)
    assert len(set(trials)) == 3, text[-3000:]
    assert "chosen trial:" in text and re.search(r"searched student +[01]\.\d+ ", text)
    assert len(images_in(nb)) == 1  # the front, rendered inline
    assert (tmp_path / "search_models" / "search" / "study.db").is_file()
