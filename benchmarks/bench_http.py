"""`spend` over HTTP against a textbook `@firestore.transactional` spend over HTTP, both served
by functions-framework (one process each) on the same Firestore emulator, in the same run; and
the cold start of `spend` to its first 200 against a bare function with the same three imports.

Sequential `POST /spend` with a fresh idempotency key each, from one keep-alive connection per
server, interleaved in rounds of 25. Cold start: process start to the first 200 of
`GET /balance/...`, alternated between the two, median of `BENCH_COLD_STARTS`.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from common import ROOT, fresh_firestore, out  # noqa: E402  (benchmarks/ is the script's folder)

from tests.support.emulators import free_port  # noqa: E402

SEQUENTIAL = int(os.environ.get("BENCH_SEQUENTIAL", "400"))
COLD_STARTS = int(os.environ.get("BENCH_COLD_STARTS", "7"))
FUNCTIONS_FRAMEWORK = str(Path(sys.executable).with_name("functions-framework"))
SERVERS = {
    "transactional (baseline)": (ROOT / "benchmarks" / "baseline" / "main.py", "baseline"),
    "spend function": (ROOT / "functions" / "spend" / "main.py", "spend"),
}


def start(source: Path, target: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [FUNCTIONS_FRAMEWORK, "--source", str(source), "--target", target, "--port", str(port)]
    return subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def first_200(port: int, started: float, process: subprocess.Popen) -> float:
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server on {port} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/balance/cold-user", timeout=10) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except (urllib.error.URLError, ConnectionError):
            pass
        if time.perf_counter() - started > 60:
            raise RuntimeError(f"no 200 on {port} within 60 s")
        time.sleep(0.002)


def main() -> int:
    with fresh_firestore():
        return run()


def run() -> int:
    from shared.ledger import accounts, change, records
    from shared.ledger.models import CreditPool, TransactionType
    from shared.store import commit

    def seed(user_id: str) -> None:
        entry = accounts.grant(TransactionType.PROMO_GRANT, 10**9, "bench", CreditPool.PERMANENT)
        commit.change_user(user_id, lambda snap: change.Change(
            result=None, account=accounts.apply(snap.account, [entry]),
            records=records.records(user_id, [entry], "bench", snap.now, at=snap.position)))

    servers, connections = {}, {}
    try:
        for name, (source, target) in SERVERS.items():
            port = free_port()
            servers[name] = start(source, target, port)
            first_200(port, time.perf_counter(), servers[name])
            connections[name] = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        users = {name: f"http-{i}" for i, name in enumerate(SERVERS)}
        for user in users.values():
            seed(user)

        def spend(name: str) -> float:
            body = json.dumps({"user_id": users[name], "amount": 7, "description": "bench",
                               "idempotency_key": uuid.uuid4().hex})
            started = time.perf_counter()
            connections[name].request("POST", "/spend", body, {"Content-Type": "application/json"})
            response = connections[name].getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            if response.status != 200:
                raise RuntimeError(f"{name} answered {response.status}")
            return elapsed

        for name in SERVERS:  # warm both (channel, JIT, caches)
            for _ in range(50):
                spend(name)
        times = {name: [] for name in SERVERS}
        for _ in range(SEQUENTIAL // 25):
            for name in SERVERS:
                times[name].extend(spend(name) for _ in range(25))
    finally:
        for process in servers.values():
            process.terminate()
            process.wait(timeout=10)

    out(f"POST /spend over HTTP, {SEQUENTIAL} sequential spends each, interleaved in rounds of 25")
    stats = {}
    for name, values in times.items():
        values.sort()
        stats[name] = (statistics.median(values), values[int(len(values) * 0.95) - 1])
        out(f"  {name:<26} median {stats[name][0] * 1000:6.2f} ms   p95 {stats[name][1] * 1000:6.2f} ms")
    base, ours = stats["transactional (baseline)"], stats["spend function"]
    out(f"  ratio spend/baseline: median {ours[0] / base[0]:.2f} (target <= 0.75), "
        f"p95 {ours[1] / base[1]:.2f} (target <= 0.90)")

    starts = {name: [] for name in SERVERS}
    for _ in range(COLD_STARTS):
        for name, (source, target) in SERVERS.items():
            port = free_port()
            started = time.perf_counter()
            process = start(source, target, port)
            try:
                starts[name].append(first_200(port, started, process))
            finally:
                process.terminate()
                process.wait(timeout=10)
    out(f"\nCold start, process start to first 200 of GET /balance, median of {COLD_STARTS} (alternated)")
    for name, values in starts.items():
        out(f"  {name:<26} median {statistics.median(values) * 1000:6.0f} ms   "
            f"min {min(values) * 1000:6.0f}   max {max(values) * 1000:6.0f}")
    ratio = statistics.median(starts["spend function"]) / statistics.median(starts["transactional (baseline)"])
    out(f"  ratio spend/bare function: {ratio:.2f} (target <= 1.15)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
