/**
 * Drives the real Firebase JavaScript SDK against a Firestore emulator, signed in as one user, for
 * the tests (tests/e2e/test_web_client_live.py). Reads commands as JSON lines on stdin and writes
 * what the SDK reports as JSON lines on stdout; ends at the end of stdin.
 *
 *   node sdk_driver.mjs --host 127.0.0.1 --port 8080 --project demo-credits [--uid alice]
 *
 * Without --uid the client is not signed in. Signing in uses `mockUserToken`, which the emulator
 * accepts in place of a Firebase Auth ID token for that uid.
 *
 * Commands (`id` names the command in what it reports):
 *   {"op": "watch_balance", "id"}                     -> {"event": "balance", "id", "view"} per snapshot
 *   {"op": "watch_history", "id", "order", "limit"}   -> {"event": "history", "id", "rows", "fromCache"}
 *   {"op": "get", "id", "path"}                       -> {"event": "result", "id", "outcome", "exists"}
 *   {"op": "query", "id", "collection", "where": [[field, op, value]...], "orderBy": [field, dir], "limit"}
 *                                                     -> {"event": "result", "id", "outcome", "count"}
 *   {"op": "write", "id", "kind": "set"|"update"|"delete"|"add", "path", "data"}
 *                                                     -> {"event": "result", "id", "outcome"}
 *   {"op": "offline" | "online", "id"}                -> {"event": "network", "id", "state"}
 *   {"op": "stop", "id"}                              stops the listener `id`
 * A refused or failed listener reports {"event": "error", "id", "code"}; outcome is "ok" or the
 * SDK's error code ("permission-denied", ...).
 */
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";

import { initializeApp } from "firebase/app";
import {
  addDoc,
  collection,
  connectFirestoreEmulator,
  deleteDoc,
  disableNetwork,
  doc,
  enableNetwork,
  getDoc,
  getDocs,
  getFirestore,
  limit,
  orderBy,
  query,
  setDoc,
  terminate,
  updateDoc,
  where,
} from "firebase/firestore";

import { watchBalance, watchHistory } from "../src/live.js";

const { values: args } = parseArgs({
  options: { host: { type: "string" }, port: { type: "string" }, project: { type: "string" }, uid: { type: "string" } },
});

const app = initializeApp({ projectId: args.project });
const db = getFirestore(app);
connectFirestoreEmulator(db, args.host, Number(args.port), args.uid ? { mockUserToken: { user_id: args.uid, sub: args.uid } } : {});

const listeners = new Map();
const report = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);
const failed = (id) => (error) => report({ event: "error", id, code: error.code ?? String(error) });

async function outcome(action) {
  try {
    return { outcome: "ok", ...(await action()) };
  } catch (error) {
    return { outcome: error.code ?? String(error) };
  }
}

const commands = {
  watch_balance: ({ id }) => {
    listeners.set(id, watchBalance(db, args.uid, (view) => report({ event: "balance", id, view }), failed(id)));
  },
  watch_history: ({ id, order = "seq", limit: n = 20 }) => {
    listeners.set(
      id,
      watchHistory(db, args.uid, n, (rows, meta) => report({ event: "history", id, rows, ...meta }), failed(id), order),
    );
  },
  stop: ({ id }) => {
    listeners.get(id)?.();
    listeners.delete(id);
  },
  get: async ({ id, path }) => {
    report({ event: "result", id, ...(await outcome(async () => ({ exists: (await getDoc(doc(db, path))).exists() }))) });
  },
  query: async ({ id, collection: name, where: filters = [], orderBy: order, limit: n }) => {
    const parts = filters.map(([field, op, value]) => where(field, op, value));
    if (order) parts.push(orderBy(...order));
    if (n) parts.push(limit(n));
    report({ event: "result", id, ...(await outcome(async () => ({ count: (await getDocs(query(collection(db, name), ...parts))).size }))) });
  },
  write: async ({ id, kind, path, data }) => {
    const actions = {
      set: () => setDoc(doc(db, path), data),
      update: () => updateDoc(doc(db, path), data),
      delete: () => deleteDoc(doc(db, path)),
      add: () => addDoc(collection(db, path), data),
    };
    report({ event: "result", id, ...(await outcome(async () => (await actions[kind](), {}))) });
  },
  offline: async ({ id }) => {
    await disableNetwork(db);
    report({ event: "network", id, state: "offline" });
  },
  online: async ({ id }) => {
    await enableNetwork(db);
    report({ event: "network", id, state: "online" });
  },
};

const pending = [];
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const command = JSON.parse(line);
  const run = commands[command.op];
  if (!run) {
    report({ event: "error", id: command.id, code: `unknown op ${command.op}` });
    continue;
  }
  // Commands run concurrently: a refused write must not hold up the listeners' reports.
  pending.push(Promise.resolve(run(command)).catch(failed(command.id)));
}
for (const stop of listeners.values()) stop();
await Promise.allSettled(pending);
await terminate(db);
process.exit(0);
