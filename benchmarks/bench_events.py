"""Events-out throughput: Firestore document events through `ledger_events` on a real
functions-framework server into the Pub/Sub emulator, against a bare publisher publishing the
same messages to the same emulator, in the same run.

The events are prebuilt binary-mode CloudEvents with protobuf `DocumentEventData` bodies, half
new transaction records (one `transaction.created` each), half user-document writes (one
`balance.updated` each), POSTed by CONCURRENCY keep-alive connections as Eventarc would push
them. The baseline is a bare client-library publisher (batching and message ordering on)
publishing exactly the messages the function publishes (same data, attributes and ordering
keys) from one thread, waiting for every publish to be acknowledged. Prints events per second for each, medians over
the repeats, and the ratio.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import tempfile
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

from common import out  # noqa: E402  (benchmarks/ is the script's folder)
from tests.support.emulators import PROJECT, Emulator, free_port  # noqa: E402

EVENTS = int(os.environ.get("BENCH_EVENTS", "3000"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "16"))
SERVER_THREADS = int(os.environ.get("BENCH_THREADS", "32"))
TARGET = 500


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


def post_all(url: str, events) -> float:
    target = urlparse(url)
    chunks = [events[k::CONCURRENCY] for k in range(CONCURRENCY)]

    def worker(chunk):
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
        for headers, body in chunk:
            connection.request("POST", "/", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            assert response.status in (200, 204), response.status
        connection.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(worker, chunks))
    return time.perf_counter() - started


@contextlib.contextmanager
def served(env, functions_framework, root):
    """`functions-framework --target ledger_events` (gunicorn, as deployed); logs to a file, not a pipe."""
    port = free_port()
    with tempfile.TemporaryFile() as logs:
        process = subprocess.Popen(
            [functions_framework, "--target", "ledger_events", "--port", str(port),
             "--source", os.environ.get("BENCH_SOURCE") or str(root / "functions" / "ledger_events" / "main.py")],
            env=env, cwd=root, stdout=logs, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("ledger_events did not start")
                time.sleep(0.05)
            yield f"http://127.0.0.1:{port}"
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
           "THREADS": str(SERVER_THREADS)}
    with served(env, FUNCTIONS_FRAMEWORK, ROOT) as url:
        def function(events) -> float:
            return post_all(url, events)

        impls = {"bare publisher": bare, "ledger_events": function}
        for fn in impls.values():  # warm both paths
            fn(build_events(f"warm{uuid.uuid4().hex[:4]}")[:500])
        out(f"{EVENTS} Firestore events (half records, half balance writes), {CONCURRENCY} concurrent "
            f"deliveries, {REPEATS} repeats, events/s")
        rates: dict[str, list[float]] = {name: [] for name in impls}
        for repeat in range(REPEATS):
            order = list(impls.items()) if repeat % 2 == 0 else list(reversed(impls.items()))
            for name, fn in order:
                events = build_events(f"r{repeat}{name[:3]}")
                rates[name].append(EVENTS / fn(events))
            out(f"  repeat {repeat + 1}: " + ", ".join(f"{n} {v[-1]:,.0f}" for n, v in rates.items()))
    admin.delete_topic(topic=topic)

    medians = {name: statistics.median(values) for name, values in rates.items()}
    ours = medians["ledger_events"]
    out("")
    out("  median   " + "   ".join(f"{name} {value:,.0f}" for name, value in medians.items())
        + f"   ratio {ours / medians['bare publisher']:.2f}   target >= {TARGET} events/s: "
        + ("met" if ours >= TARGET else "NOT met"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
