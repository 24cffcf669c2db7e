/**
 * The example page: the signed-in user's balance and last records, live.
 *
 * Locally (served by `./scripts/run-local.sh`, see docs/how-to/show-balance-live.md) it reads
 * `config.json` from the page's server (project id and the Firestore emulator's address) and
 * signs in to the emulator as the user named by `?uid=` with `mockUserToken`, which only the
 * emulator accepts. A real app signs in with Firebase Auth instead; the rest is the same.
 * Everything on the page comes from `live.js` and `view.js`; text is set with `textContent`,
 * never as HTML, since descriptions come from callers.
 */
import { initializeApp } from "firebase/app";
import { connectFirestoreEmulator, getFirestore } from "firebase/firestore";

import { watchBalance, watchHistory } from "./live.js";
import { describe } from "./view.js";

const HISTORY_ROWS = 10;

const config = await (await fetch("config.json")).json();
const uid = new URLSearchParams(location.search).get("uid") || config.user;

const app = initializeApp({ projectId: config.projectId });
const db = getFirestore(app);
connectFirestoreEmulator(db, config.firestoreHost, config.firestorePort, {
  mockUserToken: { user_id: uid, sub: uid },
});

const $ = (id) => document.getElementById(id);
$("uid").textContent = uid;

watchBalance(
  db,
  uid,
  (view) => {
    document.body.dataset.state = view.state;
    $("balance").textContent = view.balance === null ? "…" : String(view.balance);
    $("status").textContent = describe(view);
    $("monthly").textContent = view.monthly ?? "…";
    $("permanent").textContent = view.permanent ?? "…";
    $("held").textContent = view.held;
    $("owed").textContent = view.owed;
    $("legacy").hidden = !view.legacy;
  },
  (error) => {
    document.body.dataset.state = "error";
    $("status").textContent = `The balance cannot be shown (${error.code}). Reload to try again.`;
  },
);

watchHistory(
  db,
  uid,
  HISTORY_ROWS,
  (rows, { fromCache }) => {
    $("history-note").textContent = fromCache ? "offline: last known records" : rows.length ? "" : "none yet";
    $("history").replaceChildren(
      ...rows.map((row) => {
        const tr = document.createElement("tr");
        for (const value of [row.seq, row.created_at, row.type, row.pool, row.amount, row.balance_after, row.description]) {
          const td = document.createElement("td");
          td.textContent = value ?? "";
          tr.append(td);
        }
        return tr;
      }),
    );
  },
  (error) => {
    $("history-note").textContent = `The history cannot be shown (${error.code}).`;
  },
);
