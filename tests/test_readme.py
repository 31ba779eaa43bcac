"""The README's "use it in your own TF project" snippet runs as written."""

import os
import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_readme_snippet_runs(tmp_path, data_dir, monkeypatch):
    text = (REPO / "README.md").read_text()
    marker = text.index("<!-- readme-snippet")
    code = re.search(r"```python\n(.*?)```", text[marker:], re.S).group(1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GRADREG_DATA_DIR", os.fspath(data_dir))
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - running our own docs
    assert (tmp_path / "doubleback.keras").exists()
    assert 0.0 <= namespace["gr"].evaluation.accuracy(namespace["model"], namespace["x"],
                                                       namespace["y"]) <= 1.0
