"""A fast fake Mastodon for benchmarks, run as its own process.

``POST /api/v1/statuses`` answers like Mastodon (200, JSON ``{"id", "url"}``) after a
configurable latency, and 401 for a token that is not ``bench-token-*``. With
``--fail-rate`` that fraction of requests, at random (seeded), answers 503
``{"error": "Service Unavailable"}`` and creates nothing, as Mastodon behind its proxy does
when overloaded. Every request is recorded with the Unix time it arrived (before the
latency), its ``Idempotency-Key`` and its status; nothing is de-duplicated, so a double
publish shows up as two arrivals.

``GET /_bench/arrivals`` returns ``[[time, key, status], ...]``; ``POST /_bench/reset``
forgets them.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import time

from aiohttp import web

ARRIVALS = web.AppKey("arrivals", list[tuple[float, str, int]])
LATENCY = web.AppKey("latency", float)
FAIL_RATE = web.AppKey("fail_rate", float)
RANDOM = web.AppKey("random", random.Random)
STATUS_IDS = itertools.count(1)


async def create_status(request: web.Request) -> web.Response:
    arrived = time.time()
    app = request.app
    key = request.headers.get("Idempotency-Key", "")
    auth = request.headers.get("Authorization", "")
    await request.read()
    latency = app[LATENCY]
    if latency:
        await asyncio.sleep(latency)
    if not auth.startswith("Bearer bench-token-"):
        app[ARRIVALS].append((arrived, key, 401))
        return web.json_response({"error": "The access token is invalid"}, status=401)
    if app[RANDOM].random() < app[FAIL_RATE]:
        app[ARRIVALS].append((arrived, key, 503))
        return web.json_response({"error": "Service Unavailable"}, status=503)
    app[ARRIVALS].append((arrived, key, 200))
    status_id = str(next(STATUS_IDS))
    return web.json_response(
        {"id": status_id, "url": f"http://{request.host}/@bench/{status_id}"}, status=200
    )


async def list_arrivals(request: web.Request) -> web.Response:
    return web.json_response(request.app[ARRIVALS])


async def reset(request: web.Request) -> web.Response:
    request.app[ARRIVALS].clear()
    return web.json_response({})


def build_app(latency_ms: float, fail_rate: float = 0.0, seed: int = 1) -> web.Application:
    app = web.Application()
    app[ARRIVALS] = []
    app[LATENCY] = latency_ms / 1000
    app[FAIL_RATE] = fail_rate
    app[RANDOM] = random.Random(seed)
    app.router.add_post("/api/v1/statuses", create_status)
    app.router.add_get("/_bench/arrivals", list_arrivals)
    app.router.add_post("/_bench/reset", reset)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--fail-rate", type=float, default=0.0, help="fraction answered 503")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    web.run_app(
        build_app(args.latency_ms, args.fail_rate, args.seed),
        host="127.0.0.1",
        port=args.port,
        print=None,
        access_log=None,
        backlog=1024,
    )


if __name__ == "__main__":
    main()
