"""`python -m bench` (make bench): every benchmark, one summary. Progress goes to stderr.

`BENCH_ONLY=throughput,priorities` (or `python -m bench throughput priorities`) runs a subset;
the names are :data:`BENCHMARKS`' keys. Each benchmark module has ``main(...) -> dict`` (its
figures, each beside the baseline it measured in the same run) and ``summary(dict) -> list[str]``
(its lines here); every knob is an environment variable, listed in docs/benchmarks.md.
`python -m bench topic --subscribers 100000` runs the topic fan-out alone, at that size
(default 1,000,000; env BENCH_TOPIC_SUBSCRIBERS).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import channel_throughput, e2e_latency, inbox_scale, priorities, scaling, sse_fanout, throughput, topic_fanout
from .common import machine, say


def _env(name: str, default: str, kind: Callable = int):
    return kind(os.environ.get(name, default))


@dataclass(frozen=True)
class Benchmark:
    key: str  # its figures' key in the JSON
    run: Callable[[argparse.Namespace], dict]
    summary: Callable[[dict], list[str]]


#: every benchmark, in the order they run
BENCHMARKS: dict[str, Benchmark] = {
    "throughput": Benchmark("throughput", lambda a: throughput.main(_env("BENCH_MESSAGES", "100000"),
                                                                    _env("BENCH_SQS_RATE", "100", float)),
                            throughput.summary),
    "channels": Benchmark("channel_throughput", lambda a: channel_throughput.main(
        _env("BENCH_PUSH", "1000"), _env("BENCH_EMAIL", "1000"), os.environ.get("BENCH_PROFILE")),
        channel_throughput.summary),
    "e2e": Benchmark("e2e_latency", lambda a: e2e_latency.main(_env("BENCH_RATE", "300", float),
                                                               _env("BENCH_SECONDS", "30", float)), e2e_latency.summary),
    "priorities": Benchmark("priorities", lambda a: priorities.main(_env("BENCH_HIGH_RATE", "10", float),
                                                                    _env("BENCH_LOW_RATE", "40", float)),
                            priorities.summary),
    "sse": Benchmark("sse_fanout", lambda a: sse_fanout.main(), sse_fanout.summary),
    "scaling": Benchmark("scaling", lambda a: scaling.main(_env("BENCH_SCALING_RATE", "100", float),
                                                           _env("BENCH_SCALING_SECONDS", "10", float),
                                                           _env("BENCH_SCALING_MESSAGES", "20000")), scaling.summary),
    "inbox": Benchmark("inbox_scale", lambda a: inbox_scale.main(
        _env("BENCH_INBOX_ROWS", "10000000"), _env("BENCH_INBOX_USERS", "100000"), _env("BENCH_INBOX_SMALL", "10000"),
        _env("BENCH_INBOX_REQUESTS", "2000"), os.environ.get("BENCH_INBOX_BASELINE")), inbox_scale.summary),
    "topic": Benchmark("topic_fanout", lambda a: topic_fanout.main(a.subscribers), topic_fanout.summary),
}


def main() -> None:
    started = time.time()
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("only", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default: BENCH_ONLY, else all): {', '.join(BENCHMARKS)}")
    parser.add_argument("--subscribers", type=int, default=_env("BENCH_TOPIC_SUBSCRIBERS", "1000000"),
                        help="the topic benchmark's subscribers")
    args = parser.parse_args(sys.argv[1:])
    only = args.only or [n.strip() for n in os.environ.get("BENCH_ONLY", ",".join(BENCHMARKS)).split(",") if n.strip()]
    unknown = [n for n in only if n not in BENCHMARKS]
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)}; the names are {', '.join(BENCHMARKS)}")
    results: dict = {"machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    for name, bench in BENCHMARKS.items():
        if name in only:
            results[bench.key] = bench.run(args)
    print(json.dumps(results, indent=2), flush=True)  # first: a summary line that fails cannot lose the figures
    say("")
    say(f"summary ({time.time() - started:.0f} s)")
    for bench in BENCHMARKS.values():
        if bench.key in results:
            for line in bench.summary(results[bench.key]):
                say(line if line.startswith("  ") else f"  {line}")


main()
