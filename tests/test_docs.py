"""The docs stay true: every config key is documented, and the README keeps its two commands."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from crossline.config import _SECTIONS

ROOT = Path(__file__).resolve().parents[1]


def test_every_config_key_is_documented():
    text = (ROOT / "docs" / "configuration.md").read_text()
    for section, cls in _SECTIONS.items():
        assert f"## `[{section}]`" in text, section
        block = text.split(f"## `[{section}]`", 1)[1].split("\n## ", 1)[0]
        for field in fields(cls):
            assert f"| `{field.name}` |" in block, f"[{section}] {field.name} is not documented"


def test_readme_gives_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "./ops/hub" in readme and "./ops/test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./ops/test" in ci
