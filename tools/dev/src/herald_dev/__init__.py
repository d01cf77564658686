"""Developer tooling behind ``make run`` and ``make test`` (dev-only).

Nothing here is imported by the services or shipped in their images: it starts embedded
Postgres and Redis for a laptop or CI, supervises the four services, and runs the checks.
"""
