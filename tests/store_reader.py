"""Open a store from a stranger and read all of it, in a process of its own.

``python store_reader.py PATH [--check] [--append]`` prints one JSON line:
``{"outcome": "ok", "digest": ...}`` (a SHA-256 over ids and decoded vectors,
so the parent can compare it with the original's) or ``{"outcome":
"store_error", "type": ..., "message": ...}``. Any other exception prints
``"outcome": "other_error"`` and exits 3. A crash shows as a negative return
code, a hang as the parent's timeout; ``run`` sets an address-space limit
(RLIMIT_AS), so an unbounded allocation fails here instead of in the machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
import traceback
from dataclasses import dataclass

#: Address space of the reader: imports take about 400 MB; a store of the
#: tests' size needs a few MB more. A claimed length that is not checked
#: before allocation asks for gigabytes and fails against this.
MEMORY_LIMIT = 1536 << 20
HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass
class Outcome:
    kind: str  # ok | store_error | other_error | crash | hang
    detail: str
    digest: str | None = None


def run(path: str, *args: str, timeout: float = 60.0, memory: int = MEMORY_LIMIT) -> Outcome:
    """Read ``path`` in a subprocess limited to ``memory`` bytes and ``timeout`` seconds."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    # The caller's path first (it chose which tree is under test), then this checkout.
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), os.path.dirname(HERE)]))
    )
    env["NUMBA_NUM_THREADS"] = "1"
    try:
        proc = subprocess.run(
            [sys.executable, os.path.join(HERE, "store_reader.py"), path, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=limit,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return Outcome("hang", f"no answer within {timeout} s")
    if proc.returncode < 0:
        return Outcome("crash", f"signal {-proc.returncode}: {proc.stderr[-2000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return Outcome("other_error", f"rc {proc.returncode}, no answer: {proc.stderr[-3000:]}")
    doc = json.loads(lines[-1])
    return Outcome(doc["outcome"], doc.get("message", ""), doc.get("digest"))


#: A path given as ``CHECK_PREFIX + path`` is read with ``check()`` first, as ``--check`` does for every path.
CHECK_PREFIX = "check="


def digest_of(store: object) -> str:
    h = hashlib.sha256()
    for ids, vec in store.iter_batches(1000):  # type: ignore[attr-defined]
        h.update("\n".join(ids).encode("utf-8") + b"\0")
        h.update(vec.tobytes())
    return h.hexdigest()


def _read_one(path: str, append: bool, check: bool) -> dict[str, str]:
    from minifloat_store.store import EmbeddingStore, StoreError

    try:
        with EmbeddingStore.open(path, "a" if append else "r") as s:
            if check:
                s.check()
            d = digest_of(s)
            ids = s.ids
            if ids:
                s.get(ids[:3])
                s.search(s.get(ids[:1]), k=2)
    except StoreError as exc:
        return {"outcome": "store_error", "type": type(exc).__name__, "message": str(exc)}
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        msg = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-3000:]}"
        return {"outcome": "other_error", "message": msg}
    return {"outcome": "ok", "digest": d}


def main() -> int:
    """Read every path given; one JSON line each (a ``begin`` line first, so a crash names its store)."""
    paths = [a for a in sys.argv[1:] if not a.startswith("--")]
    rc = 0
    for path in paths:
        print(json.dumps({"begin": path}), flush=True)
        # CHECK_PREFIX + PATH: this one store with check() (one process can read a store both ways)
        check = "--check" in sys.argv or path.startswith(CHECK_PREFIX)
        doc = _read_one(path.removeprefix(CHECK_PREFIX), "--append" in sys.argv, check)
        doc["path"] = path
        print(json.dumps(doc), flush=True)
        rc = max(rc, 3 if doc["outcome"] == "other_error" else 0)
    return rc


def run_many(paths: list[str], *args: str, timeout: float = 120.0, memory: int = MEMORY_LIMIT) -> dict[str, Outcome]:
    """``run`` over several stores in one process (imports once); a crash or hang is charged to its store."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), os.path.dirname(HERE)]))
    )
    env["NUMBA_NUM_THREADS"] = "1"
    out: dict[str, Outcome] = {}
    todo = list(paths)
    while todo:
        try:
            proc = subprocess.run(
                [sys.executable, os.path.join(HERE, "store_reader.py"), *todo, *args],
                capture_output=True,
                text=True,
                timeout=timeout,
                preexec_fn=limit,
                env=env,
            )
            stdout, failure = proc.stdout, (None if proc.returncode >= 0 else f"signal {-proc.returncode}")
        except subprocess.TimeoutExpired as exc:
            stdout, failure = (
                (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or ""),
                "hang",
            )
        current = None
        for line in stdout.splitlines():
            if not line.startswith("{"):
                continue
            doc = json.loads(line)
            if "begin" in doc:
                current = doc["begin"]
            else:
                out[doc["path"]] = Outcome(doc["outcome"], doc.get("message", ""), doc.get("digest"))
                current = None
        if failure is None:
            for p in todo:
                out.setdefault(p, Outcome("other_error", f"no answer: {proc.stderr[-2000:]}"))
            break
        if current is None:  # died outside any store (e.g. while importing)
            for p in todo:
                out.setdefault(p, Outcome("crash" if failure != "hang" else "hang", failure))
            break
        out[current] = Outcome("crash" if failure != "hang" else "hang", failure)
        todo = [p for p in todo if p not in out]
    return out


if __name__ == "__main__":
    sys.exit(main())
