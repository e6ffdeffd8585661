"""Micro benchmark: one event against 1,000 mapping rules, and the load time of 1,000 rules.

    .venv/bin/python bench/rules.py [--rules 1000] [--events 64] [--rounds 30] [--json FILE]

Every generated rule is ``on: ticket.created`` ``from: connectwise``, so all of them sit
under the kind and vendor of every event: the kind/source index alone removes nothing.
Four rule sets are measured:

- ``clients``: every rule is per client (``client.key: <key>`` plus a ticket type list),
  the shape of rules generated from a client list; the index's best case.
- ``keyed``: every rule tests a value with ``eq`` / ``in`` (per client, per board, per
  ticket type), as rules generated per client or board do.
- ``mixed``: rules as an MSP with many clients writes (or generates) them. 45 % are per
  client (``client.key: <key>`` plus a ticket type), 25 % per board (``ticket.board``
  plus a summary regex), 15 % by ticket type list and priority, and 15 % have no
  equality to start from (an ``any`` of regexes, ``not``, ``ne``, ``exists``).
- ``unindexable``: every rule starts with a regex or an ``any`` (nothing to index on); the
  worst case, measured so nobody mistakes the index for the whole story.

For each set: ``explain(rules, event)`` (what ``hub/services/pipeline.py`` calls) and
``evaluate(rules, event)``, µs per event (p50 / p99 over ``events x rounds`` calls, events
cycled, 1-3 of them matching per event), plus ``load_rules`` of the set written as 10
files of 100 rules (seconds, best and median of 5): YAML parsing with line numbers,
pydantic validation, condition and template compilation, index build. Load is measured
twice: templates repeated across rules (a handful of distinct texts, as generated rules
have) and every template distinct. Only public functions are called, so the same script
measures any commit (`git stash` is not needed: run it from a `git worktree`).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub.config.mappings import load_rules  # noqa: E402  (after the path set-up)
from hub.config.playbooks import PlaybookLibrary, load_library  # noqa: E402
from hub.core.events import ClientRef, Event, EventKind, HubClientRef, SubjectRef  # noqa: E402
from hub.core.mapping.engine import RuleSet, evaluate, explain  # noqa: E402

BOARDS = ["Service Desk", "HR", "Projects", "Alerts", "Procurement", "Onsite", "Billing",
          "Security", "Network", "Cloud", "Escalations", "Triage"]
TYPES = ["Leaver", "New Starter", "Password Reset", "Hardware", "Software", "Access",
         "Printer", "Email", "VPN", "Licence"]
WORDS = ["leaver", "offboard", "starter", "laptop", "mailbox", "vpn", "printer", "urgent",
         "outage", "invoice", "licence", "backup", "phishing", "access", "teams"]
N_CLIENTS = 400
TEMPLATE_POOL = [
    "Ticket #{{ ticket.id }} {{ ticket.summary }} ({{ source }})",
    "{{ ticket.board }} / {{ ticket.type }}: {{ ticket.summary }}",
    "Seen by {{ source }} at {{ occurred_at }}",
    "{{ client.name }}: ticket {{ ticket.id }}",
    "{{ ticket.contact.name | default('unknown') }} raised {{ ticket.id }}",
]


def _client(n: int) -> str:
    return f"client-{n:03d}"


def _action(i: int, rng: random.Random, distinct: bool) -> dict[str, Any]:
    """One of launch / comment / tick, with templates from the pool or unique per rule."""
    text = rng.choice(TEMPLATE_POOL)
    if distinct:
        text = f"[{i}] {text}"
    pick = i % 3
    if pick == 0:
        name = "{{ ticket.contact.name }}"
        if distinct:
            name += f" #{i}"
        return {"launch": {"playbook": "user-offboarding", "inputs": {"leaver_name": name}}}
    if pick == 1:
        return {"comment": {"playbook": "user-offboarding", "text": text}}
    return {"tick": {"playbook": "user-offboarding", "step": "confirm-leaver", "evidence": text}}


def _condition(i: int, rng: random.Random, mode: str) -> dict[str, Any]:
    """A rule condition of one of the families described in the module docstring."""
    word = rng.choice(WORDS)
    if mode == "unindexable":
        if i % 2:
            return {"ticket.summary": {"matches": f"(?i)\\b{word}{i}\\b"},
                    "ticket.board": rng.choice(BOARDS)}
        return {"any": [{"ticket.summary": {"matches": f"(?i){word}-{i}"}},
                        {"ticket.subType": f"sub-{i}"}],
                "ticket.priority": {"gte": rng.randint(1, 5)}}
    family = rng.random() * {"clients": 0.45, "keyed": 0.85}.get(mode, 1.0)
    other = rng.choice(WORDS)
    if family < 0.45:
        return {"client.key": _client(rng.randrange(N_CLIENTS)),
                "ticket.type": {"in": rng.sample(TYPES, 2)}}
    if family < 0.70:
        return {"ticket.board": rng.choice(BOARDS),
                "ticket.summary": {"matches": f"(?i)\\b{word}\\b.*\\b{other}\\b"}}
    if family < 0.85:
        return {"ticket.type": {"in": rng.sample(TYPES, 2)},
                "ticket.subType": rng.choice(TYPES),
                "ticket.priority": {"gte": rng.randint(1, 5)}}
    tail = rng.randrange(4)
    if tail == 0:
        return {"any": [{"ticket.summary": {"matches": f"(?i)^{word}: {other}"}},
                        {"ticket.contact.name": f"Contact {rng.randrange(64)}"}]}
    if tail == 1:
        return {"not": {"ticket.board": rng.choice(BOARDS)},
                "ticket.summary": {"matches": f"(?i)^{word}: {other}"}}
    if tail == 2:
        return {"ticket.status": {"ne": "Closed"}, "ticket.contact.email": {"exists": True},
                "ticket.summary": {"matches": f"{word}{i}"}}
    return {"ticket.priority": {"gt": 4}, "ticket.custom_fields.Tier": {"in": ["gold", "vip"]},
            "client.key": {"ne": _client(rng.randrange(N_CLIENTS))},
            "ticket.summary": {"matches": f"(?i){word}.*{other}"}}


def make_rule_docs(n: int, *, mode: str, distinct: bool,
                   per_file: int = 100, seed: int = 13) -> list[str]:
    """``n`` rules as YAML documents of ``per_file`` rules each."""
    rng = random.Random(seed)
    rules = []
    for i in range(n):
        rule: dict[str, Any] = {"id": f"gen-{i:05d}", "on": "ticket.created",
                                "from": "connectwise",
                                "if": _condition(i, rng, mode)}
        if i % 50 == 7:
            rule["priority"] = 10
        rule.update(_action(i, rng, distinct))
        rules.append(rule)
    return [yaml.safe_dump({"rules": rules[k:k + per_file]}, sort_keys=False)
            for k in range(0, n, per_file)]


def make_events(n: int, seed: int = 7) -> list[Event]:
    """``n`` connectwise ticket.created events with a hub client, board, type and summary."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ticket = {
            "id": 1000 + i,
            "summary": f"{rng.choice(WORDS).title()}: {rng.choice(WORDS)} for user {i}",
            "board": rng.choice(BOARDS),
            "type": rng.choice(TYPES),
            "subType": rng.choice(TYPES),
            "status": "New",
            "priority": rng.randint(1, 5),
            "contact": {"name": f"Contact {i}", "email": f"c{i}@example.test"},
            "custom_fields": {"Tier": rng.choice(["gold", "silver", "bronze"])},
        }
        key = _client(rng.randrange(N_CLIENTS))
        out.append(Event(
            source="cw-prod", vendor="connectwise", kind=EventKind.TICKET_CREATED,
            dedupe_key=f"bench-{i}", occurred_at=datetime(2026, 11, 22, 9, 0, tzinfo=UTC),
            client=ClientRef(id=key.upper(), name=f"Client {key}"),
            hub_client=HubClientRef(key=key, name=f"Client {key}"),
            subject=SubjectRef(type="ticket", id=str(1000 + i)),
            data={"ticket": ticket},
        ))
    return out


def write_files(directory: Path, docs: list[str]) -> None:
    """Write the documents as ``rules-NN.yaml``."""
    for k, doc in enumerate(docs):
        (directory / f"rules-{k:02d}.yaml").write_text(doc, encoding="utf-8")


def time_load(docs: list[str], library: PlaybookLibrary,
              repeat: int = 5) -> tuple[RuleSet, list[float], list[float]]:
    """Load the documents from a temporary directory ``repeat`` times.

    Returns:
        The rule set, wall seconds per load and CPU seconds per load.
    """
    times, cpu = [], []
    ruleset = RuleSet()
    with tempfile.TemporaryDirectory(prefix="bench-rules-") as tmp:
        write_files(Path(tmp), docs)
        for _ in range(repeat):
            start, start_cpu = time.perf_counter(), time.thread_time()
            ruleset = load_rules(Path(tmp), library)
            cpu.append(time.thread_time() - start_cpu)
            times.append(time.perf_counter() - start)
    return ruleset, times, cpu


def time_calls(fn: Callable[[RuleSet, Event], Any], ruleset: RuleSet, events: list[Event],
               rounds: int) -> tuple[list[float], list[float]]:
    """Wall and CPU µs per call of ``fn(ruleset, event)`` over every event, ``rounds`` times.

    CPU time (this thread's) leaves out the time the process waited for a core, which on
    this shared two-core machine is most of the spread of the wall figures.
    """
    for event in events:  # warm-up
        fn(ruleset, event)
    wall, cpu = [], []
    gc.collect()
    for _ in range(rounds):
        for event in events:
            start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
            fn(ruleset, event)
            cpu.append((time.thread_time_ns() - start_cpu) / 1000)
            wall.append((time.perf_counter_ns() - start) / 1000)
    return wall, cpu


def _evaluate_quiet(ruleset: RuleSet, event: Event) -> Any:
    return evaluate(ruleset, event)


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    """Run both rule sets and print one line per figure (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--events", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--sets", nargs="+",
                        default=["clients", "keyed", "mixed", "unindexable"],
                        choices=["clients", "keyed", "mixed", "unindexable"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    library = load_library(ROOT / "playbooks")
    events = make_events(args.events)
    report: dict[str, Any] = {"rules": args.rules, "events": args.events, "rounds": args.rounds,
                              "python": sys.version.split()[0],
                              "loadavg_start": os.getloadavg()}
    for name in args.sets:
        docs = make_rule_docs(args.rules, mode=name, distinct=False)
        ruleset, load_times, load_cpu = time_load(docs, library)
        _, distinct_times, distinct_cpu = time_load(
            make_rule_docs(args.rules, mode=name, distinct=True), library, 3)
        matches = [len(explain(ruleset, e).matched) for e in events]
        figures: dict[str, Any] = {
            "load_s_best": min(load_times), "load_s_median": statistics.median(load_times),
            "load_distinct_templates_s_best": min(distinct_times),
            "load_cpu_s_best": min(load_cpu),
            "load_distinct_templates_cpu_s_best": min(distinct_cpu),
            "matched_per_event_mean": statistics.mean(matches),
            "near_misses_per_event_mean": statistics.mean(
                len(explain(ruleset, e).near_misses) for e in events),
            "examined_per_event_mean": statistics.mean(
                explain(ruleset, e).examined for e in events),
        }
        for label, fn in (("explain", explain), ("evaluate", _evaluate_quiet)):
            samples, cpu = time_calls(fn, ruleset, events, args.rounds)
            figures[f"{label}_us_p50"] = pct(samples, 0.50)
            figures[f"{label}_us_p99"] = pct(samples, 0.99)
            figures[f"{label}_cpu_us_p50"] = pct(cpu, 0.50)
        report[name] = figures
        f = figures
        print(f"{name:12s} {len(ruleset)} rules  "
              f"explain p50 {f['explain_us_p50']:9.1f} µs  p99 {f['explain_us_p99']:9.1f} µs  "
              f"evaluate p50 {f['evaluate_us_p50']:9.1f} µs  p99 {f['evaluate_us_p99']:9.1f} µs")
        print(f"{'':12s} CPU p50: explain {f['explain_cpu_us_p50']:.1f} µs, "
              f"evaluate {f['evaluate_cpu_us_p50']:.1f} µs")
        print(f"{'':12s} load {f['load_s_best']:.3f} s best / {f['load_s_median']:.3f} s median "
              f"(distinct templates {f['load_distinct_templates_s_best']:.3f} s)  "
              f"matched {f['matched_per_event_mean']:.2f}  "
              f"examined {f['examined_per_event_mean']:.1f}  "
              f"near misses {f['near_misses_per_event_mean']:.1f} per event")
        print(f"{'':12s} load CPU {f['load_cpu_s_best']:.3f} s best "
              f"(distinct templates {f['load_distinct_templates_cpu_s_best']:.3f} s)")
    report["loadavg_end"] = os.getloadavg()
    print(f"load average at start {report['loadavg_start'][0]:.2f}, "
          f"at end {report['loadavg_end'][0]:.2f} (2 cores)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
