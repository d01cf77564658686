"""``herald-dev``: the developer commands behind the Makefile (dev-only)."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
from collections.abc import Callable
from types import FrameType

from herald_dev import checks
from herald_dev.run import RunError, run
from herald_dev.scripts import ScriptNotFoundError, script
from herald_dev.stack import DEV_DATABASE, TEST_DATABASE, StackError, open_stack, stop_embedded

Handler = Callable[[argparse.Namespace], int]


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    # Everything `test` does not know is pytest's, in order: `herald-dev test -x -k foo tests/api`.
    args, extra = parser.parse_known_args(argv)
    if extra and args.command is not _test:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.pytest_args = extra
    # SIGTERM (CI timeouts, `kill`) unwinds like Ctrl-C, so embedded servers this process
    # started are stopped on the way out instead of being left behind.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        sys.exit(args.command(args))
    except (StackError, RunError, ScriptNotFoundError) as exc:
        print(f"herald-dev: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def _run(_: argparse.Namespace) -> int:
    return run()


def _test(args: argparse.Namespace) -> int:
    steps: list[checks.Step] = []
    if not args.skip_checks:
        steps = checks.lint_steps() + checks.typecheck_steps() + checks.compose_steps()
    steps += checks.peer_steps()
    steps.append(checks.pytest_step(args.pytest_args))
    with open_stack(TEST_DATABASE) as stack:
        return checks.run_steps(steps, {**os.environ, **stack.env()})


def _env(args: argparse.Namespace) -> int:
    with open_stack(DEV_DATABASE if args.dev else TEST_DATABASE, keep_running=True) as stack:
        for name, value in stack.env().items():
            print(f"export {name}={shlex.quote(value)}")
    return 0  # open_stack has said which servers stay up, and how to stop them


def _migrate(_: argparse.Namespace) -> int:
    with open_stack(DEV_DATABASE) as stack:
        return checks.run_steps(
            [("migrate", [script("herald-migrate")])], {**os.environ, **stack.env()}
        )


def _stop(_: argparse.Namespace) -> int:
    stop_embedded()
    return 0


def _lint(_: argparse.Namespace) -> int:
    return checks.run_steps(checks.lint_steps())


def _typecheck(_: argparse.Namespace) -> int:
    return checks.run_steps(checks.typecheck_steps())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="herald-dev",
        description="Herald's developer commands. Postgres and Redis come from HERALD_DATABASE_URL"
        " / HERALD_REDIS_URL when set, else embedded servers under HERALD_DATA_DIR (default"
        " .herald/ in the repo).",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        # allow_abbrev=False: `--s` is pytest's, not an abbreviation of --skip-checks.
        sub = commands.add_parser(name, help=help_text, description=help_text, allow_abbrev=False)
        sub.set_defaults(command=handler)
        return sub

    command("run", _run, "migrate, seed the dev workspace and run the four services")
    test = command(
        "test",
        _test,
        "ruff, mypy and pytest against real Postgres and Redis; other arguments go to pytest",
    )
    test.add_argument("--skip-checks", action="store_true", help="run only pytest")
    env = command("env", _env, "start the servers if needed, leave them running, print exports")
    env.add_argument("--dev", action="store_true", help="the `make run` database, not the test one")
    command("migrate", _migrate, "migrate the dev database to head")
    command("stop", _stop, "stop the embedded servers in the data dir")
    command("lint", _lint, "ruff check and ruff format --check")
    command("typecheck", _typecheck, "mypy over every package")
    return parser


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)
