"""Every ```python block of README.md (and of docs/*.md) runs, in order, in a scratch directory that
holds a data.csv (the bundled air_passengers series in long format)."""
import os
import re

import pytest

from neurodivergent import load_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md"] + sorted(
    os.path.join("docs", f) for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md")
) if os.path.isdir(os.path.join(ROOT, "docs")) else ["README.md"]


def python_blocks(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


@pytest.mark.parametrize("doc", DOCS)
def test_code_blocks_run(doc, tmp_path, monkeypatch):
    blocks = python_blocks(doc)
    if doc == "README.md":
        assert blocks, "README.md must show a Python example"
    monkeypatch.chdir(tmp_path)
    load_dataset("air_passengers").to_csv("data.csv")
    namespace = {"__name__": "__doc_example__"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{doc}[block {i}]", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the message is the point
            raise AssertionError(f"{doc} block {i} failed: {exc!r}\n{code}") from exc
