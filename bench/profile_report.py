"""Summarise ``py-spy record --format raw`` profiles (collapsed stacks).

    .venv/bin/python bench/profile_report.py PROFILE.txt [--top 25] [--match hub/,connectors/]

Prints the functions with the most samples on-CPU, as self time (the frame on top of the
stack) and as inclusive time (anywhere in the stack, counted once per sample), in % of
all samples of the file. ``--match`` keeps only frames whose file contains one of the
comma-separated strings in the inclusive list (e.g. the project's own code).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def short(path: str) -> str:
    for marker in ("site-packages/", "/src/", "/work/main/", "python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def frame_key(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    return f"{m['func']} ({short(m['file'])})"


_PACKAGES = ("sqlalchemy", "psycopg", "hub", "connectors", "httpx", "httpcore", "h11",
             "uvicorn", "starlette", "fastapi", "anyio", "dramatiq", "redis", "structlog",
             "pydantic", "jinja2", "json", "logging", "asyncio", "threading", "uuid")


def package(key: str) -> str:
    """The library a frame key belongs to (by the first path component of its file)."""
    file = key.rsplit("(", 1)[-1].rstrip(")")
    head = file.split("/", 1)[0].replace(".py", "")
    if head.startswith("<"):
        return "sqlalchemy" if "sqlalchemy" in key else "generated code"
    return head if head in _PACKAGES else "other"


def load(path: Path) -> tuple[Counter[str], Counter[str], Counter[str], int]:
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for raw in path.read_text(errors="replace").splitlines():
        stack, _, count = raw.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if frames and frames[0].startswith(("thread ", "process ")):
            while frames and frames[0].startswith(("thread ", "process ")):
                if frames[0].startswith("thread "):
                    threads[frames[0]] += n
                frames = frames[1:]
        if not frames:
            continue
        total += n
        keys = [frame_key(f) for f in frames]
        self_c[keys[-1]] += n
        for k in set(keys):
            incl[k] += n
    return self_c, incl, threads, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--match", default="hub/,connectors/",
                    help="inclusive list: only frames from files containing these")
    args = ap.parse_args()
    wanted = [m for m in args.match.split(",") if m]
    for path in args.files:
        self_c, incl, threads, total = load(path)
        print(f"\n== {path.name}: {total} samples on CPU")
        if not total:
            continue
        print("-- threads")
        for name, n in threads.most_common(8):
            print(f"{100 * n / total:6.1f}%  {name}")
        print("-- self time by library")
        libs: Counter[str] = Counter()
        for name, n in self_c.items():
            libs[package(name)] += n
        for name, n in libs.most_common(12):
            print(f"{100 * n / total:6.1f}%  {name}")
        print("-- self time")
        for name, n in self_c.most_common(args.top):
            print(f"{100 * n / total:6.1f}%  {name}")
        print(f"-- inclusive ({', '.join(wanted) or 'all'})")
        shown = 0
        for name, n in incl.most_common():
            if wanted and not any(w in name for w in wanted):
                continue
            print(f"{100 * n / total:6.1f}%  {name}")
            shown += 1
            if shown >= args.top:
                break


if __name__ == "__main__":
    main()
