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


def digest_of(store: object) -> str:
    h = hashlib.sha256()
    for ids, vec in store.iter_batches(1000):  # type: ignore[attr-defined]
        h.update("\n".join(ids).encode("utf-8") + b"\0")
        h.update(vec.tobytes())
    return h.hexdigest()


def main() -> int:
    from minifloat_store.store import EmbeddingStore, StoreError

    path = sys.argv[1]
    try:
        with EmbeddingStore.open(path, "a" if "--append" in sys.argv else "r") as s:
            if "--check" in sys.argv:
                s.check()
            d = digest_of(s)
            ids = s.ids
            if ids:
                s.get(ids[:3])
                s.search(s.get(ids[:1]), k=2)
    except StoreError as exc:
        print(json.dumps({"outcome": "store_error", "type": type(exc).__name__, "message": str(exc)}))
        return 0
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        msg = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-3000:]}"
        print(json.dumps({"outcome": "other_error", "message": msg}))
        return 3
    print(json.dumps({"outcome": "ok", "digest": d}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
