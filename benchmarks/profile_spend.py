"""Profiles the request path of `POST /spend` in process (functions-framework's app, the
service, the store, the client library) over `BENCH_SPENDS` sequential spends with keys, and
prints the top of the profile by own time. `BENCH_KNOWN=0` turns off deciding from the
instance's last known version of the user (every spend reads first, as before it existed).
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import sys
import uuid

from common import ROOT, fresh_firestore, out  # noqa: E402

SPENDS = int(os.environ.get("BENCH_SPENDS", "2000"))


def main() -> int:
    with fresh_firestore():
        from functions_framework import create_app

        from shared.store import commit, known
        from tests.support.ledger import seed

        if os.environ.get("BENCH_KNOWN", "1") == "0":
            commit._change_known_user = lambda *args: commit._MISS
        app = create_app("spend", source=str(ROOT / "functions" / "spend" / "main.py"))
        client = app.test_client()
        seed("profiled", permanent=10**9)
        sys.stdout = io.StringIO()
        for _ in range(50):
            client.post("/spend", json={"user_id": "profiled", "amount": 1, "idempotency_key": uuid.uuid4().hex})
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(SPENDS):
            response = client.post("/spend", json={"user_id": "profiled", "amount": 1,
                                                   "idempotency_key": uuid.uuid4().hex})
            assert response.status_code == 200
        profile.disable()
        text = io.StringIO()
        stats = pstats.Stats(profile, stream=text).sort_stats("tottime")
        stats.print_stats(15)
        out(f"{SPENDS} spends, known versions {'off' if os.environ.get('BENCH_KNOWN') == '0' else 'on'}, "
            f"cache size {len(known.known_users())}")
        out("\n".join(line for line in text.getvalue().splitlines() if line.strip())[:6000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
