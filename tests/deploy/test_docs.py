"""docs/configuration.md lists every setting, and the README's table agrees with it."""

from __future__ import annotations

import re

from herald_common.settings import Settings
from tests.deploy.manifests import ROOT

CONFIGURATION = ROOT / "docs" / "configuration.md"
README = ROOT / "README.md"


def documented(text: str) -> set[str]:
    return set(re.findall(r"`(HERALD_[A-Z0-9_]+)`", text))


def setting_variables() -> set[str]:
    return {f"HERALD_{name.upper()}" for name in Settings.model_fields}


def test_every_setting_is_documented() -> None:
    missing = setting_variables() - documented(CONFIGURATION.read_text())
    assert not missing, f"add these to docs/configuration.md: {sorted(missing)}"


def test_the_readme_table_names_only_documented_variables() -> None:
    readme = README.read_text()
    table = readme[readme.index("## Configuration") : readme.index("## Running in containers")]
    assert documented(table) <= documented(CONFIGURATION.read_text())
