"""The API application and its ``herald-api`` entry point."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from fastapi.routing import APIRoute

from herald_api import health
from herald_api.accounts import endpoints as accounts
from herald_api.ai import endpoints as ai
from herald_api.api_keys import endpoints as api_keys
from herald_api.auth import endpoints as auth
from herald_api.edge import install_edge
from herald_api.mail import MailSender
from herald_api.media import endpoints as media
from herald_api.notifications import endpoints as notifications
from herald_api.observability import install_observability, shared_metrics_dir
from herald_api.posts import endpoints as posts
from herald_api.problems import COMMON_RESPONSES, WORKSPACE_RESPONSES, install_problem_handlers
from herald_api.resources import open_resources
from herald_api.sandbox import endpoints as sandbox
from herald_api.workspaces import endpoints as workspaces
from herald_common.logging import configure_logging
from herald_common.loop import settle_garbage_collector
from herald_common.settings import Settings, get_settings


def _operation_id(route: APIRoute) -> str:
    """The function name, e.g. ``create_post``: stable, readable method names in SDKs."""
    return route.name


def create_app(settings: Settings | None = None, mailer: MailSender | None = None) -> FastAPI:
    """The app; ``mailer`` replaces the mail backend from settings (tests keep an outbox)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_resources(settings, mailer) as resources:
            app.state.resources = resources
            yield

    app = FastAPI(
        title="Herald API",
        version="1.0.0",
        description="Schedule social-media posts and have them published on time, exactly once.",
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    install_problem_handlers(app)
    install_observability(app)
    app.include_router(health.router)
    install_edge(app, settings)
    app.include_router(auth.router, responses=COMMON_RESPONSES)
    app.include_router(workspaces.user_router, responses=COMMON_RESPONSES)
    app.include_router(accounts.callback_router)
    for router in (
        posts.router,
        media.router,
        accounts.router,
        sandbox.router,
        notifications.router,
        workspaces.router,
        api_keys.router,
        ai.router,
    ):
        app.include_router(router, responses=COMMON_RESPONSES | WORKSPACE_RESPONSES)
    return app


# uvicorn pings each worker from the moment it is spawned and replaces one that has not
# answered within this time; a worker answers only once it has imported the app, which took
# 7 s here without compiled bytecode (a development checkout), so uvicorn's 5 s default
# replaced workers in a loop. A hung worker is replaced this much later.
WORKER_HEALTHCHECK_SECONDS = 60


def worker_app() -> FastAPI:
    """The app as each of several worker processes builds it (uvicorn imports it by name)."""
    settings = get_settings()
    configure_logging(settings, "api")
    app = create_app(settings)
    settle_garbage_collector()
    return app


def main() -> None:
    settings = get_settings()
    configure_logging(settings, "api")
    if settings.api_workers == 1:
        app = create_app(settings)
        settle_garbage_collector()
        _serve(app, settings)
        return
    # Several processes need the app by name (each builds its own) and shared metric files.
    with shared_metrics_dir():
        _serve(f"{__name__}:worker_app", settings, factory=True, workers=settings.api_workers)


def _serve(
    app: FastAPI | str, settings: Settings, *, factory: bool = False, workers: int = 1
) -> None:
    uvicorn.run(
        app,
        factory=factory,
        workers=workers,
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
        # X-Forwarded-For is believed only from HERALD_TRUSTED_PROXIES (edge.py), not from
        # uvicorn's default of any peer on 127.0.0.1 (FORWARDED_ALLOW_IPS).
        proxy_headers=False,
    )
