/**
 * What the app shows for its user's `users_credits/{uid}` document and history: pure functions of
 * plain values (no Firebase import), so they run the same in the page, under Node and in tests.
 *
 * Rules enforced here:
 * - the balance is the sum of the two pools, `credits_monthly + credits_permanent` (credits are
 *   integers; a missing or non-integer pool reads as 0, as the functions read it);
 * - a legacy document (an integer `balance` and neither pool) shows that balance as permanent
 *   credits, a negative one as 0: the view `GET /balance` gives before the functions migrate it;
 * - "does not exist" from the server means the user has no credits yet: a confirmed 0;
 *   "does not exist" from the cache alone means nothing is known yet: no number at all;
 * - a snapshot from the cache (`fromCache`: offline, or not yet confirmed by the server) shows the
 *   last known balance and says it may be out of date;
 * - a snapshot with `hasPendingWrites` carries a change made on this device that the server has
 *   not accepted. The app never writes (the rules refuse every client write, so such a change is
 *   rolled back), so its numbers are never shown: the last confirmed ones stay. (The SDK does not
 *   flag a local delete of the document this way: it reads as "does not exist". One more reason
 *   the app never writes.)
 */

/** The view before the first snapshot: nothing known. */
export const LOADING = Object.freeze({
  state: "loading",
  balance: null,
  monthly: null,
  permanent: null,
  held: 0,
  owed: 0,
  legacy: false,
});

function credits(value) {
  return Number.isInteger(value) ? value : 0;
}

/** The pools a stored document holds, a legacy one in its migrated view. */
export function poolsOf(data) {
  const legacy =
    data != null && "balance" in data && !("credits_monthly" in data) && !("credits_permanent" in data);
  const monthly = legacy ? 0 : credits(data?.credits_monthly);
  const permanent = legacy ? Math.max(credits(data.balance), 0) : credits(data?.credits_permanent);
  return {
    balance: monthly + permanent,
    monthly,
    permanent,
    // Already out of the pools (open holds), and what Stripe took back that the pools could not
    // cover: shown beside the balance, never subtracted from it again.
    held: credits(data?.credits_held),
    owed: credits(data?.credits_owed),
    legacy,
  };
}

/**
 * The next view of the balance, from the previous view and one snapshot of the user's document:
 * `{exists, data, fromCache, hasPendingWrites}` (what `DocumentSnapshot` and its `metadata` say).
 *
 * States: `loading` (nothing known), `none` (the server says there is no document: 0 credits),
 * `live` (the server's latest), `offline` (the last known numbers, from the cache), `pending`
 * (a local change waits for the server: the last confirmed numbers).
 */
export function nextView(previous, { exists, data, fromCache, hasPendingWrites }) {
  const known = previous && previous.balance !== null ? previous : null;
  if (hasPendingWrites) {
    return { ...(known ?? LOADING), state: "pending" };
  }
  if (!exists) {
    if (!fromCache) {
      return { ...LOADING, state: "none", balance: 0, monthly: 0, permanent: 0 };
    }
    return known ? { ...known, state: "offline" } : LOADING;
  }
  return { state: fromCache ? "offline" : "live", ...poolsOf(data) };
}

/** One line of text for a view, as the example page shows it. */
export function describe(view) {
  switch (view.state) {
    case "loading":
      return "Loading your balance...";
    case "none":
      return "No credits yet.";
    case "offline":
      return `${view.balance} credits (offline: last known balance, may be out of date)`;
    case "pending":
      return view.balance === null
        ? "Waiting for the server..."
        : `${view.balance} credits (waiting for the server)`;
    default:
      return `${view.balance} credits`;
  }
}

function isoTime(value) {
  // A Firestore Timestamp has toDate(); plain values (tests, JSON) pass through.
  if (value && typeof value.toDate === "function") {
    return value.toDate().toISOString();
  }
  return value ?? null;
}

/** History rows from `{id, data}` pairs, in the query's order (newest first). */
export function historyRows(docs) {
  return docs.map(({ id, data }) => ({
    transaction_id: id,
    seq: Number.isInteger(data.seq) ? data.seq : null,
    type: data.type,
    pool: data.pool ?? null,
    amount: credits(data.amount),
    description: data.description ?? "",
    created_at: isoTime(data.created_at),
    balance_after: data.balance_after
      ? credits(data.balance_after.credits_monthly) + credits(data.balance_after.credits_permanent)
      : null,
  }));
}
