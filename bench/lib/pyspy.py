"""py-spy profiles of a server process under load, and where their busy samples are.

py-spy: ``$SWIPER_PYSPY``, else ``py-spy`` on PATH, else /root/.venvs/swiper/bin/py-spy. Profiles are separate
runs from the measured ones, so py-spy's pauses never touch a table.
"""
from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from pathlib import Path

from bench.lib.session import Proc, Session
from bench.lib.system import BenchError

PACKAGES = ("aiomysql", "pymysql", "peewee_async", "redis", "jwt", "tornado", "asyncio", "json", "async_timeout",
            "orjson", "pydantic", "uvloop")


def find_pyspy() -> str:
    path = os.environ.get("SWIPER_PYSPY") or shutil.which("py-spy") or "/root/.venvs/swiper/bin/py-spy"
    if not os.access(path, os.X_OK):
        raise BenchError("py-spy not found (set SWIPER_PYSPY or pip install py-spy)")
    return path


def record(session: Session, pyspy: str, name: str, pid: int, seconds: int) -> tuple[Proc, Path]:
    """Start recording ``pid`` for ``seconds`` at 100 Hz (collapsed stacks); wait for the Proc, then summarise."""
    out = session.work / f"prof-{name}.txt"
    proc = session.spawn(f"pyspy-{name}", [pyspy, "record", "-r", "100", "-d", str(seconds), "-p", str(pid),
                                           "-o", str(out), "--format", "raw"])
    return proc, out


def _package(frame: str) -> str:
    match = re.search(r"\(([^():]*):\d+\)$", frame)
    path = match.group(1) if match else frame
    if path == "peewee.py":
        return "peewee"
    for name in PACKAGES:
        if path.startswith((name + "/", name + ".")):
            return name
    if path.startswith(("handlers/", "services/", "models/", "conf/")):
        return "swiper code"
    return "other (stdlib: selectors, contextlib, ...)"


def summarise(path: Path) -> list[str]:
    """Busy samples two ways: by package of the innermost frame (self time), and by step of the handler
    (inclusive: the handler method, the Swiper function it calls, and what that calls)."""
    stacks = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    n = sum(c for _, c in stacks) or 1
    own, step = Counter(), Counter()
    for frames, c in stacks:
        own[_package(frames[-1])] += c
        at = next((i for i, f in enumerate(frames) if re.match(r"\w*Handler\.(get|post|prepare) ", f)), None)
        if at is None:
            step["outside the handler (Tornado reading/parsing/writing, event loop)"] += c
        elif at + 1 < len(frames) and _package(frames[at + 1]) == "swiper code":
            key = frames[at].split(" ")[0] + " > " + frames[at + 1]
            if at + 2 < len(frames):
                nxt = frames[at + 2]
                key += " > " + (nxt.split(" ")[0] if _package(nxt) == "swiper code" else _package(nxt))
            step[key] += c
        else:
            step[frames[at].split(" ")[0] + " (its own code and direct library calls, e.g. finish)"] += c
    lines = ["  by package of the innermost frame (self time):"]
    lines += [f"    {100 * c / n:5.1f}%  {name}" for name, c in own.most_common()]
    lines.append("  by step of the handler (inclusive; file:line of the call, then what it calls):")
    lines += [f"    {100 * c / n:5.1f}%  {name}" for name, c in step.most_common(16)]
    lines.append(f"  ({n} busy samples)")
    return lines
