"""A node peer's tests never skip quietly: without Node.js they fail, saying what is missing."""

from __future__ import annotations

import shutil

import pytest

from tests.peers.node import peer_dir


def test_a_peer_without_node_fails_its_test_naming_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)

    with pytest.raises(BaseException) as raised:  # noqa: PT011 (a skip must not pass either)
        peer_dir("bluesky")

    assert raised.type is pytest.fail.Exception
    assert "node and npm are not on PATH" in str(raised.value)
    assert "Node.js 20 with npm" in str(raised.value)
