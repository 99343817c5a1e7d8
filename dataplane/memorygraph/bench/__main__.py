"""`python -m memorygraph.bench` (also `make bench`): throughput and latency of the data plane as
ratios to baselines measured in the same run, medians over several runs.

Baselines: a bare gRPC echo server (same grpcio, same server flavour and settings), the `fast`
durability mode, and PostgreSQL recording the same LLM turns with durable settings. Servers run
in child processes; this process is the load generator for all of them.

This module parses the arguments and runs the scenarios in order, nothing more: what a scenario
sends lives in `workloads`, what its results mean in `verdicts`, how they are shown in `report`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

from memorygraph.bench import quiet, report
from memorygraph.bench.launch import free_port
from memorygraph.bench.launch import server as launch_server
from memorygraph.bench.load import Result
from memorygraph.bench.verdicts import WORK_REFERENCES_US, Runs, checks, references
from memorygraph.bench.workloads import (
    Sliceable,
    Target,
    measure_add_prompt,
    measure_add_prompt_routed,
    measure_get_node,
    measure_get_node_forwarded,
    measure_ingest,
    measure_list_sessions,
    measure_postgres,
    measure_single_turn,
    measure_stream_query,
    measure_two_call_turn,
    roll_wal_over,
)
from memorygraph.store.rocks import MAX_WAL_BYTES

# The plugin scenario: the validator and the PII redactor on every new node.
PLUGINS_YAML = """\
version: 1
plugins:
  - name: validator
    type: validator
    config: {max_content_length: 20000, deny_patterns: ["(?i)password\\\\s*[:=]"]}
  - name: pii
    type: redactor
"""


# A group measured while other processes used more than NOISY_CORES is measured again, at most
# this many times (`--repeats`); the quietest attempt counts.
REPEATS = 2
# The warm-up of a scenario's later slices (`--slices`): its server is warm by then, but a slice
# opens a channel of its own.
SLICE_WARMUP = 0.2
# The groups of scenarios compared with each other, in the order they run (`--only`).
GROUPS = (
    "add_prompt.32",
    "add_prompt.1",
    "get_node",
    "stream_query",
    "ingest",
    "list_sessions",
    "workers",
    "forwarding",
    "turn",
)
# The groups that measure the durable server `mg`. Every MemoryGraph server but the two
# ListSessions ones (filled by their scenario) is measured as a store in service is: its
# write-ahead log rolled over onto a reused file first (`--fresh-logs`: as started), with at
# most this much filler.
MG_GROUPS = frozenset(GROUPS) - {"list_sessions", "forwarding"}
ROLL_OVER_LIMIT = 16 * MAX_WAL_BYTES


def in_service(only: list[str] | None, *servers: tuple[str, Target, frozenset[str]]) -> None:
    """Bring the store of each of the `servers` (name, target, the groups measuring it) that
    a group asked for measures into the state of a store in service: filler prompts until its
    write-ahead log is written to a reused file."""
    filled = False
    for name, target, used_by in servers:
        if only and used_by.isdisjoint(only):
            continue
        written = roll_wal_over(target, ROLL_OVER_LIMIT)
        filled = True
        print(
            f"  {name}: write-ahead log rolled over onto a reused file "
            f"({written >> 20} MiB of filler prompts)",
            flush=True,
        )
    if filled:  # the flushes and compactions the filler set off end before any measurement
        waited = quiet.settle()
        if waited is None:
            print("  the servers were still busy a minute after the filler", flush=True)
        else:
            print(f"  the servers were idle {waited:.1f}s after the filler", flush=True)


def one_run(
    scratch: Path, args: argparse.Namespace, pg_dsn: str | None, own: tuple[int, ...] = ()
) -> dict[str, Result]:
    """Every scenario once; `own` are the pids of servers outside this process's tree."""
    d, w, slices = args.duration, args.warmup, args.slices
    results: dict[str, Result] = {}

    def measure(measurement: Sliceable, duration: float, warmup: float) -> Result:
        before = quiet.snapshot(also=own)
        result = asyncio.run(measurement(duration, warmup))
        result.others = quiet.others(before, quiet.snapshot(also=own))
        return result

    def group(name: str, *scenarios: tuple[str, Sliceable]) -> None:
        """Scenarios compared with each other, measured back to back (in `slices` turns, each
        scenario a slice of its duration in each); again, as a whole, when the machine was
        busy during any of them. Skipped when `--only` names other groups."""
        if args.only and name not in args.only:
            return

        def attempt(number: int) -> dict[str, Result]:
            if number:
                print(f"  busy machine: measuring {scenarios[0][0]} and the rest again", flush=True)
            parts: dict[str, list[Result]] = {name: [] for name, _ in scenarios}
            for turn in range(slices):
                warmup = w if turn == 0 else min(w, SLICE_WARMUP)
                for name, measurement in scenarios:
                    parts[name].append(measure(measurement, d / slices, warmup))
            found = {name: Result.pooled(measured) for name, measured in parts.items()}
            for name, result in found.items():
                report.print_result(name, result)
            return found

        results.update(quiet.quietest(attempt, args.repeats))

    plugins = scratch / "plugins.yaml"
    plugins.write_text(PLUGINS_YAML)
    server = partial(launch_server, pin_cpus=args.pin_cpus)
    # Every server is up for the whole run and each comparison is measured back to back, so
    # both sides of a ratio meet the same background load on a shared machine.
    with contextlib.ExitStack() as servers:
        echo = servers.enter_context(server("echo", scratch))
        mg = servers.enter_context(server("memorygraph", scratch, "--durability", "durable"))
        fast = servers.enter_context(server("memorygraph", scratch, "--durability", "fast"))
        hooked = servers.enter_context(
            server("memorygraph", scratch, "--plugins-file", str(plugins))
        )
        working = {
            us: servers.enter_context(server("echo", scratch, "--work-us", str(us)))
            for us in WORK_REFERENCES_US
        }
        synced = servers.enter_context(server("echo", scratch, "--sync-dir", str(scratch)))
        synced_reused = servers.enter_context(
            server("echo", scratch, "--sync-dir", str(scratch), "--sync-reuse-mb", "64")
        )
        # ListSessions over the default 64 shards and over one (sessions filled fast).
        workers = servers.enter_context(
            server("memorygraph", scratch, "--durability", "durable", workers=2)
        )
        listed = {
            shards: servers.enter_context(
                server("memorygraph", scratch, "--durability", "fast", "--shards", str(shards))
            )
            for shards in (1, 64)
        }

        if not args.fresh_logs:
            in_service(
                args.only,
                ("mg", mg, MG_GROUPS),
                ("mg_fast", fast, frozenset({"add_prompt.32"})),
                ("mg_plugins", hooked, frozenset({"add_prompt.32"})),
                ("mg_workers2", workers, frozenset({"workers", "forwarding"})),
            )

        def pg(batch: bool, concurrency: int, prompts: bool = False) -> Sliceable:
            async def measurement(duration: float, warmup: float) -> Result:
                return await asyncio.to_thread(
                    measure_postgres,
                    pg_dsn or "",
                    batch=batch,
                    concurrency=concurrency,
                    duration=duration,
                    warmup=warmup,
                    prompts=prompts,
                )

            return measurement

        with_pg = pg_dsn is not None
        group(
            "add_prompt.32",
            *(
                (f"echo_work{us}.add_prompt.32", partial(measure_add_prompt, worker, 32))
                for us, worker in working.items()
            ),
            ("echo.add_prompt.32", partial(measure_add_prompt, echo, 32)),
            ("mg.add_prompt.32", partial(measure_add_prompt, mg, 32)),
            ("mg_fast.add_prompt.32", partial(measure_add_prompt, fast, 32)),
            ("mg_plugins.add_prompt.32", partial(measure_add_prompt, hooked, 32)),
        )
        group(
            "add_prompt.1",
            ("echo_sync.add_prompt.1", partial(measure_add_prompt, synced, 1)),
            ("echo_sync_reused.add_prompt.1", partial(measure_add_prompt, synced_reused, 1)),
            ("echo.add_prompt.1", partial(measure_add_prompt, echo, 1)),
            ("mg.add_prompt.1", partial(measure_add_prompt, mg, 1)),
        )
        group(
            "get_node",
            ("echo.get_node.32", partial(measure_get_node, echo, 32)),
            ("mg.get_node.32", partial(measure_get_node, mg, 32)),
        )
        group(
            "stream_query",
            ("echo.stream_query", partial(measure_stream_query, echo)),
            ("mg.stream_query", partial(measure_stream_query, mg)),
        )
        group(
            "ingest",
            ("mg.ingest", partial(measure_ingest, mg, args.writers)),
            *((("pg.ingest", pg(True, args.writers)),) if with_pg else ()),
        )
        group(
            "list_sessions",
            *(
                (f"mg_shards{shards}.list_sessions", partial(measure_list_sessions, listing))
                for shards, listing in listed.items()
            ),
        )
        # One worker against two, each call sent to its session's worker, and PostgreSQL
        # committing what AddPrompt writes, back to back.
        group(
            "workers",
            ("mg.add_prompt_routed.64", partial(measure_add_prompt_routed, mg, 64)),
            (
                "mg_workers2.add_prompt_routed.64",
                partial(measure_add_prompt_routed, workers, 64),
            ),
            ("mg_workers2.add_prompt.64", partial(measure_add_prompt, workers, 64)),
            *((("pg.add_prompt.64", pg(False, 64, prompts=True)),) if with_pg else ()),
        )
        # A call a worker answers itself against one it passes on to the owner.
        group(
            "forwarding",
            *(
                (
                    f"mg_workers2.get_node_{'forwarded' if forwarded else 'direct'}.1",
                    partial(measure_get_node_forwarded, workers, forwarded),
                )
                for forwarded in (False, True)
            ),
        )
        # One turn: RecordTurn (how the docs record one), PostgreSQL's two commits, then the
        # same turn as two calls (AddPrompt, AddResponse).
        group(
            "turn",
            ("mg.single_turn", partial(measure_single_turn, mg)),
            *((("pg.single_turn", pg(False, 1)),) if with_pg else ()),
            ("mg.two_call_turn", partial(measure_two_call_turn, mg)),
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m memorygraph.bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--runs", type=int, default=3, help="runs to take the median of (3)")
    parser.add_argument(
        "--duration", type=float, default=5.0, help="measured seconds per scenario (5)"
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first (1)")
    parser.add_argument(
        "--slices",
        type=int,
        default=1,
        help="measure each group in this many turns, every scenario a slice of its duration in "
        "each, and pool the slices: pairs measured closer in time (1)",
    )
    parser.add_argument(
        "--writers",
        type=int,
        default=2,
        help="concurrent Ingest streams / PostgreSQL connections (2)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=REPEATS,
        help=f"times a group of scenarios measured on a busy machine is measured again ({REPEATS})",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=GROUPS,
        metavar="GROUP",
        help=f"measure only this group (repeatable): {', '.join(GROUPS)}",
    )
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL baseline")
    parser.add_argument(
        "--fresh-logs",
        action="store_true",
        help="measure the stores as started, their write-ahead log in its first, new "
        "file; by default filler prompts roll it over onto a reused file first, as in a store "
        "in service",
    )
    parser.add_argument(
        "--pin-cpus",
        action="store_true",
        help="keep every data plane and echo server on one CPU (each worker on its own), as "
        "`serve --pin-cpus` does; PostgreSQL runs as it is",
    )
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    args = parser.parse_args(argv)
    if args.repeats < 0 or args.runs < 1 or args.slices < 1:
        parser.error("--runs and --slices must be at least 1, and --repeats at least 0")

    with tempfile.TemporaryDirectory(prefix="memorygraph-bench-") as tmp:
        scratch = Path(tmp)
        os.chmod(scratch, 0o755)
        pg_context: Any = None
        pg_dsn = None
        own: tuple[int, ...] = ()
        if not args.no_postgres:
            from memorygraph.bench.postgres import TurnRecorder, postgres_server, postmaster_pid

            pg_context = postgres_server(scratch / "pg", free_port())
            pg_dsn = pg_context.__enter__()
            own = (postmaster_pid(scratch / "pg"),)
            schema = TurnRecorder(pg_dsn)
            schema.create_schema()
            schema.close()
        try:
            runs: Runs = []
            for number in range(1, args.runs + 1):
                print(f"run {number}/{args.runs}", flush=True)
                runs.append(one_run(scratch, args, pg_dsn, own))
        finally:
            if pg_context is not None:
                pg_context.__exit__(None, None, None)

    found = checks(runs)
    report.print_checks(args.runs, args.duration, found, args.slices)
    found_references = references(runs)
    report.print_references(found_references)
    report.print_quiet(runs)
    if args.json:
        settings = {
            "runs": args.runs,
            "duration": args.duration,
            "warmup": args.warmup,
            "slices": args.slices,
            "fresh_logs": args.fresh_logs,
            "pin_cpus": args.pin_cpus,
        }
        report.write_json(args.json, runs, found, found_references, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
