"""The README's "one graph from raw strings" snippet, run exactly as it is written, in a text package's directory:
onnxruntime + onnxruntime-extensions and nothing of Fulcrum give the labels its comment shows, the probabilities
``fulcrum.load`` gives, and no warning from ONNX Runtime."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import fulcrum
from fulcrum.artifact import Registry
from fulcrum.tasks import get_task

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_snippet() -> str:
    text = README.read_text()
    after = text.split("**One graph from raw strings.**", 1)[1]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_snippet_is_five_lines_of_onnxruntime_only():
    code = readme_snippet()
    assert len(code.strip().splitlines()) == 5
    assert "fulcrum" not in code and "import onnxruntime as ort, onnxruntime_extensions as ortx" in code


def test_the_readme_snippet_runs_on_a_text_package(tmp_path, monkeypatch, capfd):
    task = get_task("text")
    ex = task.example()  # 200 BBC articles, the n-gram model
    reg = Registry(tmp_path / "registry")
    pkg = fulcrum.train(ex.data, target=ex.target, name="news", registry=reg, progress=False, **ex.options)
    code = readme_snippet()
    texts = re.findall(r'\["([^"]+)"\]', code)
    assert len(texts) == 2
    capfd.readouterr()

    monkeypatch.chdir(pkg.path)
    scope: dict = {}
    exec(compile(code, "README-text-snippet", "exec"), scope)  # noqa: S102 - our own README
    printed = capfd.readouterr()

    label, proba, ood = scope["label"], scope["proba"], scope["ood"]
    want = fulcrum.load("news", registry=reg).predict([{"text": t} for t in texts])
    assert label.tolist() == want["prediction"].tolist()
    labels = pkg.manifest["task"]["labels"]
    np.testing.assert_allclose(proba, want[[f"proba_{c}" for c in labels]].to_numpy(), atol=1e-6)
    assert ood.shape == (2,) and np.allclose(ood, want["ood_score"], atol=1e-6)
    comment = code.strip().splitlines()[-1].split("#", 1)[1]
    assert comment.strip().startswith(str(label)), (comment, label)  # the labels the README shows
    assert printed.out.startswith(str(label))
    assert "W:onnxruntime" not in printed.err, printed.err  # e.g. unused initializers in the graph


@pytest.mark.parametrize("section", ["## Tasks\n", "## Text\n"])
def test_the_readme_has_the_sections(section):
    assert section in README.read_text()
