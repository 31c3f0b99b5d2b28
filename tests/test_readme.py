"""The README's Python examples run as shown (a stale example is a bug users hit first)."""

import re
from pathlib import Path

import backprop_rs as bp

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)  # the checkpoint example writes a file
    model = bp.nn.Linear(2, 2)
    ns = {"bp": bp, "model": model, "opt": bp.optim.SGD(model.parameters(), lr=0.1)}
    for code in blocks:
        exec(compile(code, str(README), "exec"), ns)
