"""``python -m bench {spike,steady,enqueue,api,all}``: Herald's benchmarks (see bench/README.md)."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable
from typing import Any

from bench import publishing
from bench.report import note, result_name, write_result
from bench.services import LOGS

Runner = Callable[[argparse.Namespace], dict[str, Any]]


def _parser() -> tuple[argparse.ArgumentParser, dict[str, Runner]]:
    from bench import api, enqueue

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="benchmark", required=True)
    spike = sub.add_parser("spike", help="N targets due at the same second")
    steady = sub.add_parser("steady", help="one post every 100 ms")
    publishing.add_arguments(spike, steady)
    enqueue.add_arguments(sub.add_parser("enqueue", help="scheduler claim+enqueue rate"))
    api.add_arguments(sub.add_parser("api", help="POST/GET /v1/posts under wrk"))
    sub.add_parser("all", help="every benchmark with its defaults")
    runners: dict[str, Runner] = {
        "spike": publishing.spike,
        "steady": publishing.steady,
        "enqueue": enqueue.run,
        "api": api.run,
    }
    return parser, runners


def main(argv: list[str] | None = None) -> None:
    parser, runners = _parser()
    args = parser.parse_args(argv)
    names = list(runners) if args.benchmark == "all" else [args.benchmark]
    shutil.rmtree(LOGS, ignore_errors=True)  # the services' logs of this run only
    note(f"the services log into {LOGS}")
    for name in names:
        bench_args = parser.parse_args([name]) if args.benchmark == "all" else args
        result = runners[name](bench_args)
        path = write_result(result_name(name, bench_args), result)
        note(f"{name}: results in {path}")


if __name__ == "__main__":
    main()
