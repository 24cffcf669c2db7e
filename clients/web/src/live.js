/**
 * The app's live reads, on the Firebase JavaScript SDK (modular API): the user's balance document
 * and their history. The page (`page.js`) and the tests (`test/sdk_driver.mjs`) both use these.
 *
 * Rules enforced here:
 * - only what `terraform/firestore.rules` lets a signed-in user read: their own
 *   `users_credits/{uid}` (even before it exists) and their own records, always queried with
 *   `where("user_id", "==", uid)` (a query without it is refused as a whole);
 * - the history is ordered by `seq` (the record's place in the user's ledger), newest first, at
 *   most 100 rows a query (Terraform defines the composite index `user_id, seq desc`);
 *   `orderBy("created_at", "desc")` is the other allowed order (index `user_id, created_at desc`);
 * - listeners ask for metadata changes, so going offline and coming back (`fromCache`) is seen
 *   even when no number changed;
 * - nothing here writes: balances change only through the functions.
 */
import { collection, doc, limit, onSnapshot, orderBy, query, where } from "firebase/firestore";

import { LOADING, historyRows, nextView } from "./view.js";

export const USERS = "users_credits";
export const TRANSACTIONS = "credits_transactions";
export const HISTORY_ORDERS = Object.freeze(["seq", "created_at"]);
export const MAX_HISTORY = 100;

/**
 * Listens to `users_credits/{uid}`; calls `onView(view)` with each new view (see view.js) and
 * `onError(error)` if the listener is refused or fails (the SDK then closes it).
 * Returns the function that stops listening.
 */
export function watchBalance(db, uid, onView, onError) {
  let view = LOADING;
  return onSnapshot(
    doc(db, USERS, uid),
    { includeMetadataChanges: true },
    (snapshot) => {
      view = nextView(view, {
        exists: snapshot.exists(),
        data: snapshot.data(),
        fromCache: snapshot.metadata.fromCache,
        hasPendingWrites: snapshot.metadata.hasPendingWrites,
      });
      onView(view);
    },
    onError,
  );
}

/** The user's last `n` records, newest first, by `seq` (or `created_at`). */
export function historyQuery(db, uid, n = 20, order = "seq") {
  if (!HISTORY_ORDERS.includes(order)) {
    throw new Error(`history order must be one of ${HISTORY_ORDERS.join(", ")}`);
  }
  const size = Math.min(Math.max(Math.trunc(n), 1), MAX_HISTORY);
  return query(collection(db, TRANSACTIONS), where("user_id", "==", uid), orderBy(order, "desc"), limit(size));
}

/**
 * Listens to the user's last `n` records; calls `onRows(rows, {fromCache, hasPendingWrites})`
 * with every new result (rows as `historyRows` gives them). Returns the function that stops it.
 */
export function watchHistory(db, uid, n, onRows, onError, order = "seq") {
  return onSnapshot(
    historyQuery(db, uid, n, order),
    { includeMetadataChanges: true },
    (snapshot) => {
      const rows = historyRows(snapshot.docs.map((d) => ({ id: d.id, data: d.data() })));
      onRows(rows, { fromCache: snapshot.metadata.fromCache, hasPendingWrites: snapshot.metadata.hasPendingWrites });
    },
    onError,
  );
}
