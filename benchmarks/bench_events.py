"""Events-out throughput: Firestore document events through `ledger_events` on a real
functions-framework server into the Pub/Sub emulator, beside two baselines measured in the same
run on the same emulator.

The events are prebuilt binary-mode CloudEvents with protobuf `DocumentEventData` bodies, half
new transaction records (one `transaction.created` each), half user-document writes (one
`balance.updated` each), POSTed over CONCURRENCY keep-alive connections as Eventarc would push
them, by a light asyncio client (`load.py`) whose own CPU per request is reported. The server is
`functions-framework` (its ASGI stack, as for every `aio` function) with the `WORKERS` and the
request concurrency (`max_instance_request_concurrency`, the number of connections) that
`terraform/events.tf` deploys; `BENCH_WORKERS` and `BENCH_CONCURRENCY` override them.

Baselines:
- bare function: the same client against an empty async CloudEvent function
  (`bare_event/main.py`) served the same way, the ceiling functions-framework itself sets here;
- bare publisher: a client-library publisher (batching and message ordering on) publishing
  exactly the messages the function publishes (same data, attributes and ordering keys) from one
  thread with no HTTP, waiting for every publish to be acknowledged.

Prints events per second for each, medians over the repeats, the server's and the client's CPU
per event, and the ratios.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import ROOT, out  # noqa: E402  (benchmarks/ is the script's folder)
from load import request_bytes, send_all  # noqa: E402
from tests.support.emulators import PROJECT, Emulator, free_port  # noqa: E402

EVENTS = int(os.environ.get("BENCH_EVENTS", "3000"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
TARGET = 500


def deployed_setting(name: str) -> str:
    """`name` as terraform/events.tf sets it (the ledger_events function is the file's only one)."""
    text = (ROOT / "terraform" / "events.tf").read_text()
    found = re.search(rf'^\s*{name}\s*=\s*"?([^"\s]*)"?\s*$', text, re.MULTILINE)
    if not found:
        raise RuntimeError(f"terraform/events.tf sets no {name}")
    return found.group(1)


WORKERS = os.environ.get("BENCH_WORKERS") or deployed_setting("WORKERS")
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY") or deployed_setting("max_instance_request_concurrency"))


def build_events(tag: str):
    from tests.support.events import document_event, transaction, user

    events = []
    for i in range(EVENTS):
        user_id = f"{tag}-u{i % 200}"
        if i % 2:
            path = f"credits_transactions/{tag}-txn{i}"
            events.append(document_event(path, transaction(f"{tag}-txn{i}", user_id, -5)))
        else:
            events.append(document_event(f"users_credits/{user_id}", user(user_id, 0, 100 - i % 50),
                                         user(user_id, 0, 105 - i % 50)))
    return events


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process and its children (gunicorn's workers), from /proc."""
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    total = 0.0
    for each in [pid, *map(int, children)]:
        with contextlib.suppress(FileNotFoundError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


@contextlib.contextmanager
def served(env, functions_framework, root, target: str, source: str):
    """`functions-framework --target <target>` (gunicorn, as deployed); logs to a file, not a pipe."""
    port = free_port()
    with tempfile.TemporaryFile() as logs:
        process = subprocess.Popen(
            [functions_framework, "--target", target, "--port", str(port), "--source", source],
            env=env, cwd=root, stdout=logs, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{target} did not start")
                time.sleep(0.05)
            yield port, process.pid
        finally:
            process.terminate()
            process.wait(timeout=10)


def main() -> int:
    pubsub = Emulator.shared_or_started("pubsub")
    os.environ["PUBSUB_EMULATOR_HOST"] = pubsub.host
    os.environ.setdefault("GOOGLE_CLOUD_PROJECT", PROJECT)
    try:
        return run(pubsub)
    finally:
        pubsub.stop()


def run(pubsub: Emulator) -> int:
    from shared.events import settings as events_settings
    from shared.events import documents, publisher, rules, service
    from tests.support.servers import FUNCTIONS_FRAMEWORK, ROOT

    topic_name = f"bench-events-{uuid.uuid4().hex[:8]}"
    admin = publisher.pubsub_v1.PublisherClient()
    topic = admin.topic_path(PROJECT, topic_name)
    admin.create_topic(name=topic)
    os.environ["CREDITS_EVENTS_TOPIC"] = topic_name

    def messages_of(events):
        result = []
        for headers, body in events:
            change = documents.decode(body, service.document_path({"document": headers["ce-document"]}))
            result.extend(rules.messages_for(change.path, change.value, change.old_value, change.update_time,
                                             events_settings.low_balance_threshold()))
        return result

    library = publisher.pubsub_v1.PublisherClient(
        batch_settings=publisher.pubsub_v1.types.BatchSettings(max_messages=500, max_latency=0.005),
        publisher_options=publisher.pubsub_v1.types.PublisherOptions(enable_message_ordering=True),
    )

    def bare(events) -> float:
        batch = messages_of(events)  # built before the clock starts: the baseline only publishes
        client = library
        started = time.perf_counter()
        futures = [client.publish(topic, m.payload(), ordering_key=m.ordering_key, **m.attributes) for m in batch]
        for future in futures:
            future.result(timeout=60)
        return time.perf_counter() - started

    env = {**os.environ, "PYTHONPATH": str(ROOT), "PUBSUB_EMULATOR_HOST": pubsub.host,
           "GOOGLE_CLOUD_PROJECT": PROJECT, "CREDITS_EVENTS_TOPIC": topic_name,
           "WORKERS": WORKERS}
    cpu: dict[str, list[float]] = {}  # server (or publisher) CPU seconds per event
    client_cpu: dict[str, list[float]] = {}

    def over_http(name: str, port: int, pid: int):
        def run_events(events) -> float:
            requests = [request_bytes("127.0.0.1", port, headers, body) for headers, body in events]
            before = cpu_seconds(pid)
            wall, client, statuses = send_all("127.0.0.1", port, requests, CONCURRENCY)
            assert set(statuses) == {200}, statuses
            cpu.setdefault(name, []).append((cpu_seconds(pid) - before) / len(events))
            client_cpu.setdefault(name, []).append(client / len(events))
            return wall
        return run_events

    def bare_publisher(events) -> float:
        before = time.process_time()
        wall = bare(events)
        cpu.setdefault("bare publisher", []).append((time.process_time() - before) / len(events))
        return wall

    bare_source = str(ROOT / "benchmarks" / "bare_event" / "main.py")
    source = os.environ.get("BENCH_SOURCE") or str(ROOT / "functions" / "ledger_events" / "main.py")
    with served(env, FUNCTIONS_FRAMEWORK, ROOT, "ledger_events", source) as (port, pid), \
            served(env, FUNCTIONS_FRAMEWORK, ROOT, "bare_event", bare_source) as (bare_port, bare_pid):
        impls = {
            "bare publisher": bare_publisher,
            "bare function": over_http("bare function", bare_port, bare_pid),
            "ledger_events": over_http("ledger_events", port, pid),
        }
        for fn in impls.values():  # warm every path (and every worker process)
            fn(build_events(f"warm{uuid.uuid4().hex[:4]}")[:500])
        cpu.clear()
        client_cpu.clear()
        out(f"{EVENTS} Firestore events (half records, half balance writes), {CONCURRENCY} connections, "
            f"functions-framework WORKERS={WORKERS}, {REPEATS} repeats, events/s")
        rates: dict[str, list[float]] = {name: [] for name in impls}
        for repeat in range(REPEATS):
            order = list(impls.items()) if repeat % 2 == 0 else list(reversed(impls.items()))
            for name, fn in order:
                events = build_events(f"r{repeat}{name[:3]}{uuid.uuid4().hex[:4]}")
                rates[name].append(EVENTS / fn(events))
            out(f"  repeat {repeat + 1}: " + ", ".join(f"{n} {v[-1]:,.0f}" for n, v in rates.items())
                + f"   (load average {os.getloadavg()[0]:.1f})")
    admin.delete_topic(topic=topic)

    medians = {name: statistics.median(values) for name, values in rates.items()}
    ours = medians["ledger_events"]
    out("")
    for name, value in medians.items():
        line = f"  median {name:<15} {value:7,.0f} events/s   CPU {statistics.median(cpu[name]) * 1e6:6,.0f} us/event"
        if name in client_cpu:
            line += f" (server), client {statistics.median(client_cpu[name]) * 1e6:4,.0f} us/request"
        out(line)
    out(f"  ratio ledger_events / bare publisher {ours / medians['bare publisher']:.2f}, "
        f"/ bare function {ours / medians['bare function']:.2f}   target >= {TARGET} events/s: "
        + ("met" if ours >= TARGET else "NOT met"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
