"""Connecting an account, routed to its platform's module (herald_common/accounts/registry.py):
the OAuth start and callback, or credentials checked and saved. Nothing here knows a
platform by name.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from herald_api.accounts import apps, authorizations
from herald_api.accounts.schemas import AuthorizationStarted, ConnectCredentials
from herald_api.auth.permissions import Principal
from herald_api.problems import ProblemError
from herald_api.resources import Resources
from herald_common import clock
from herald_common.accounts.base import (
    AppOAuthFlow,
    InstanceChoice,
    InstanceOAuthFlow,
    OAuthFlow,
    checked_address,
)
from herald_common.accounts.oauth import OAuthClient
from herald_common.accounts.registry import APP_FLOWS, CREDENTIAL_CHECKS, INSTANCE_FLOWS
from herald_common.accounts.store import Saved, save_connection
from herald_common.crypto import TokenCipher


async def connect(
    resources: Resources,
    session: AsyncSession,
    principal: Principal,
    platform: str,
    credentials: ConnectCredentials | None,
) -> AuthorizationStarted | Saved:
    """An authorization to send the person to (OAuth), or the account connected with the
    credentials given."""
    app_flow = APP_FLOWS.get(platform)
    if app_flow is not None:
        if credentials is not None:
            raise ProblemError(
                422, "wrong-credentials", f"{platform} connects through OAuth: send no body."
            )
        return await _start_app_flow(resources, principal, app_flow)
    instance_flow = INSTANCE_FLOWS.get(platform)
    if instance_flow is not None and isinstance(credentials, instance_flow.body):
        return await _start_instance_flow(resources, session, principal, instance_flow, credentials)
    return await _connect_with_credentials(resources, session, principal, platform, credentials)


async def _start_app_flow(
    resources: Resources, principal: Principal, app_flow: type[AppOAuthFlow]
) -> AuthorizationStarted:
    flow = app_flow(resources.settings, resources.http)
    client = authorizations.configured_client(flow)
    return await authorizations.start(resources, principal, flow, client, clock.now())


async def _start_instance_flow(
    resources: Resources,
    session: AsyncSession,
    principal: Principal,
    instance_flow: type[InstanceOAuthFlow],
    body: InstanceChoice,
) -> AuthorizationStarted:
    """Herald's application on the person's instance (registered there first if need be),
    then the same start as any OAuth platform, remembering the instance."""
    settings = resources.settings
    instance = await checked_address(settings, instance_flow.instance_kind, body.instance_url)
    flow = instance_flow(settings, resources.http, instance)
    client = await apps.client_for_connecting(resources, session, flow)
    return await authorizations.start(resources, principal, flow, client, clock.now(), instance)


async def _connect_with_credentials(
    resources: Resources,
    session: AsyncSession,
    principal: Principal,
    platform: str,
    credentials: ConnectCredentials | None,
) -> Saved:
    now = clock.now()
    check = CREDENTIAL_CHECKS.get(platform)
    if check is None or not isinstance(credentials, check.body):
        instance_flow = INSTANCE_FLOWS.get(platform)
        shapes = [f"{instance_flow.body.__name__} (OAuth)"] if instance_flow is not None else []
        shapes += [check.body.__name__] if check is not None else []
        raise ProblemError(
            422,
            "wrong-credentials",
            f"{platform} accounts connect with a {' or '.join(shapes)} body.",
        )
    connection = await check(resources.settings, resources.http).check(credentials)
    saved = await save_connection(
        session,
        TokenCipher.from_settings(resources.settings),
        principal.workspace_id,
        connection,
        now,
    )
    await session.commit()
    return saved


async def callback(
    resources: Resources,
    session: AsyncSession,
    platform: str,
    code: str | None,
    state: str | None,
    error: str | None,
) -> Saved:
    """The platform's redirect back: the state is taken once, then the code exchanged."""
    record = await authorizations.take_state(resources.redis, state, platform)
    if error or not code:
        raise ProblemError(
            400,
            "authorization-denied",
            f"{platform} did not authorize Herald ({error or 'no code'}); nothing was connected.",
        )
    flow, client = await _callback_client(resources, session, platform, record.get("instance"))
    return await authorizations.finish(resources, session, flow, client, record, code, clock.now())


async def _callback_client(
    resources: Resources, session: AsyncSession, platform: str, instance: str | None
) -> tuple[OAuthFlow, OAuthClient]:
    """The flow and the client the connection was started with."""
    app_flow = APP_FLOWS.get(platform)
    if app_flow is not None:
        flow = app_flow(resources.settings, resources.http)
        return flow, authorizations.configured_client(flow)
    return await _instance_client(resources, session, INSTANCE_FLOWS[platform], instance)


async def _instance_client(
    resources: Resources,
    session: AsyncSession,
    instance_flow: type[InstanceOAuthFlow],
    instance: str | None,
) -> tuple[OAuthFlow, OAuthClient]:
    if not instance:
        raise authorizations.invalid_state()
    # Checked again: the name was public when the connection started, but DNS may have
    # moved it since. Refused here, the answer is a 422 naming the instance, rather than the
    # refused connection the pinned client would make of it (herald_common.caller_urls).
    await checked_address(resources.settings, instance_flow.instance_kind, instance)
    flow = instance_flow(resources.settings, resources.http, instance)
    client = await apps.stored_client(resources, session, flow)
    if client is None:
        raise ProblemError(
            400,
            "authorization-failed",
            f"Herald has no application on this {instance_flow.instance_kind} any more; "
            "connect again.",
        )
    return flow, client
