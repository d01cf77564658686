"""``herald-seed-dev``: the dev workspace, its key and sandbox account, and a demo owner who
can sign in with the password make run prints; run twice, it changes nothing but the password."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from herald_api.seed import DEMO_EMAIL, seed
from herald_common.settings import Settings, get_settings


@pytest.fixture
def seed_settings(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Iterator[None]:
    monkeypatch.setenv("HERALD_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("HERALD_PASSWORD_HASH_MEMORY_KIB", "1024")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def test_seed_is_idempotent_and_the_demo_user_signs_in(
    seed_settings: None, db: None, api_url: str
) -> None:
    first = await seed("hk_dev_seed-test-key", password="first demo password")
    again = await seed("hk_dev_seed-test-key", password="second demo password")
    assert again == first
    assert first["email"] == DEMO_EMAIL
    async with httpx.AsyncClient(base_url=api_url) as http:
        old = {"email": DEMO_EMAIL, "password": "first demo password"}
        assert (await http.post("/v1/auth/login", json=old)).status_code == 401
        new = {"email": DEMO_EMAIL, "password": "second demo password"}
        login = await http.post("/v1/auth/login", json=new)
        assert login.status_code == 200
        me = await http.get(
            "/v1/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
        )
        assert me.json()["workspaces"] == [
            {
                "workspace_id": first["workspace_id"],
                "workspace_name": "Dev workspace",
                "role": "owner",
            }
        ]
        accounts = await http.get(
            "/v1/accounts", headers={"Authorization": "Bearer hk_dev_seed-test-key"}
        )
        assert [a["id"] for a in accounts.json()["items"]] == [first["account_id"]]
