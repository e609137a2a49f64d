"""The manual: it builds with no warning (numpydoc validation of the documented API, cross-references, links), its
generated pages hold what the code has, and no link of the README points nowhere."""
import re
import subprocess
import sys

import pytest

from automm_lite.config import iter_fields

LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_every_relative_link_of_the_readme_points_to_a_file(repo_root):
    readme = (repo_root / "README.md").read_text()
    targets = [t for t in LINK.findall(readme) if not t.startswith(("http://", "https://", "mailto:"))]
    assert len(targets) >= 20, "the README links into the manual"
    missing = [t for t in targets if not (repo_root / t.split("#")[0]).exists()]
    assert not missing, f"README links that point nowhere: {missing}"


def test_every_page_of_the_manual_is_reachable_from_its_tables_of_contents(repo_root):
    docs = repo_root / "docs"
    pages = {p.relative_to(docs).with_suffix("").as_posix() for p in docs.rglob("*.md")
             if "_build" not in p.parts and "_generated" not in p.parts and "api" not in p.parts}
    listed = {"index"}
    for page in docs.rglob("*.md"):
        for block in re.findall(r"```\{toctree\}(.*?)```", page.read_text(), flags=re.S):
            folder = page.parent.relative_to(docs)
            for line in block.splitlines():
                if line.strip() and not line.startswith(":"):
                    listed.add((folder / line.strip()).as_posix().removeprefix("./"))
    assert pages <= listed, f"pages in no table of contents: {sorted(pages - listed)}"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_manual_builds_without_a_warning(repo_root, tmp_path):
    out = tmp_path / "html"
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           str(repo_root / "docs"), str(out), "-d", str(tmp_path / "doctrees")],
                          capture_output=True, text=True, timeout=580)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    keys_page = (out / "reference" / "hyperparameters.html").read_text()
    for key, _, _ in iter_fields():
        assert key in keys_page, f"{key} is missing from the generated keys page"
    predictor_page = (out / "reference" / "api" / "automm_lite.Predictor.html").read_text()
    assert "automm_lite.Predictor.fit" in predictor_page and "Returns" in predictor_page
    cli_page = (out / "reference" / "cli.html").read_text()
    assert all(command in cli_page for command in ("fit", "predict", "search", "distill", "keys"))
    tutorial = (out / "tutorials" / "_notebooks" / "quickstart.html").read_text()
    assert "accuracy" in tutorial and "cell_output" in tutorial, "the tutorial page shows its stored outputs"
