// The page's view rules (src/view.js), pure: run with `node --test` (tests/unit/test_web_client_view.py).
import assert from "node:assert/strict";
import { test } from "node:test";

import { LOADING, describe, historyRows, nextView, poolsOf } from "../src/view.js";

const server = (data) => ({ exists: data !== null, data: data ?? undefined, fromCache: false, hasPendingWrites: false });
const cache = (data) => ({ ...server(data), fromCache: true });

test("the balance is the sum of the two pools", () => {
  const view = nextView(LOADING, server({ credits_monthly: 70, credits_permanent: 30, credits_held: 5 }));
  assert.deepEqual(view, { state: "live", balance: 100, monthly: 70, permanent: 30, held: 5, owed: 0, legacy: false });
  assert.equal(describe(view), "100 credits");
});

test("a legacy document shows its balance as permanent credits, a negative one as zero", () => {
  assert.deepEqual(poolsOf({ user_id: "u", balance: 40 }), { balance: 40, monthly: 0, permanent: 40, held: 0, owed: 0, legacy: true });
  assert.equal(poolsOf({ balance: -5 }).balance, 0);
  // Once migrated, the pools are read and a leftover field named balance is not.
  assert.equal(poolsOf({ credits_monthly: 1, credits_permanent: 2, balance: 99 }).balance, 3);
});

test("a missing pool or a non-integer one reads as zero", () => {
  assert.equal(poolsOf({ credits_monthly: "7", credits_permanent: 2.5 }).balance, 0);
  assert.equal(poolsOf({ credits_permanent: 9 }).balance, 9);
});

test("no document from the server is a confirmed zero, from the cache alone it is unknown", () => {
  assert.equal(nextView(LOADING, server(null)).state, "none");
  assert.equal(nextView(LOADING, server(null)).balance, 0);
  assert.equal(describe(nextView(LOADING, server(null))), "No credits yet.");
  assert.deepEqual(nextView(LOADING, cache(null)), LOADING);
});

test("offline, the last known balance is shown and marked as possibly out of date", () => {
  const live = nextView(LOADING, server({ credits_monthly: 0, credits_permanent: 12 }));
  const offline = nextView(live, cache({ credits_monthly: 0, credits_permanent: 12 }));
  assert.equal(offline.state, "offline");
  assert.equal(offline.balance, 12);
  assert.match(describe(offline), /offline/);
  // A cache that holds no document keeps what was known, rather than showing 0 as a fact.
  assert.equal(nextView(live, cache(null)).balance, 12);
});

test("a snapshot with pending writes never shows its numbers", () => {
  const live = nextView(LOADING, server({ credits_monthly: 0, credits_permanent: 12 }));
  const pending = nextView(live, { exists: true, data: { credits_permanent: 1000000 }, fromCache: false, hasPendingWrites: true });
  assert.equal(pending.state, "pending");
  assert.equal(pending.balance, 12);
  assert.equal(nextView(LOADING, { exists: true, data: { credits_permanent: 5 }, fromCache: true, hasPendingWrites: true }).balance, null);
});

test("history rows keep the query's order and show the balance after each record", () => {
  const rows = historyRows([
    { id: "t2", data: { seq: 2, type: "spent", pool: "permanent", amount: -5, created_at: "2026-01-02T00:00:00Z",
      balance_after: { credits_monthly: 0, credits_permanent: 45 } } },
    { id: "t1", data: { seq: 1, type: "promo_grant", pool: "permanent", amount: 50, created_at: { toDate: () => new Date(0) } } },
  ]);
  assert.deepEqual(rows.map((row) => [row.transaction_id, row.seq, row.balance_after]), [["t2", 2, 45], ["t1", 1, null]]);
  assert.equal(rows[1].created_at, "1970-01-01T00:00:00.000Z");
});
