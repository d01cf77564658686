"""The API offers exactly the platforms herald_common.accounts.registry can connect, and each
platform's own body shapes: registering a platform's module is what makes it connectable."""

from __future__ import annotations

from typing import get_args

from herald_api.accounts.schemas import ConnectablePlatform, ConnectCredentials, OAuthPlatform
from herald_common.accounts.registry import (
    APP_FLOWS,
    CONNECTABLE_PLATFORMS,
    CREDENTIAL_CHECKS,
    INSTANCE_FLOWS,
    OAUTH_PLATFORMS,
)
from herald_common.platforms.registry import PLATFORM_NAMES


def test_the_connect_and_callback_routes_name_every_registered_platform() -> None:
    assert {p.value for p in ConnectablePlatform} == CONNECTABLE_PLATFORMS
    assert {p.value for p in OAuthPlatform} == OAUTH_PLATFORMS
    assert set(PLATFORM_NAMES) >= CONNECTABLE_PLATFORMS  # each one publishes too


def test_the_connect_body_is_one_of_the_registered_shapes() -> None:
    shapes = {check.body for check in CREDENTIAL_CHECKS.values()}
    shapes |= {flow.body for flow in INSTANCE_FLOWS.values()}
    assert set(get_args(ConnectCredentials)) == shapes


def test_each_platform_connects_one_oauth_way() -> None:
    assert not set(APP_FLOWS) & set(INSTANCE_FLOWS)
    assert not set(APP_FLOWS) & set(CREDENTIAL_CHECKS)  # OAuth with an app takes no body
