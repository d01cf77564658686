"""The API application and its ``herald-api`` entry point."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from fastapi.routing import APIRoute

from herald_api import health
from herald_api.accounts import endpoints as accounts
from herald_api.notifications import endpoints as notifications
from herald_api.observability import install_observability
from herald_api.posts import endpoints as posts
from herald_api.problems import COMMON_RESPONSES, install_problem_handlers
from herald_api.resources import open_resources
from herald_api.sandbox import endpoints as sandbox
from herald_common.logging import configure_logging
from herald_common.settings import Settings, get_settings


def _operation_id(route: APIRoute) -> str:
    """The function name, e.g. ``create_post``: stable, readable method names in SDKs."""
    return route.name


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_resources(settings) as resources:
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
    for router in (posts.router, accounts.router, sandbox.router, notifications.router):
        app.include_router(router, responses=COMMON_RESPONSES)
    return app


def main() -> None:
    settings = get_settings()
    configure_logging(settings, "api")
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
    )
