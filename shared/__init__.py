"""Two-pool credits: the package every function imports.

Features (`spending`, `billing`, `promotions`, `operations`) sit above the ledger (`ledger`:
accounts, records, the document codec, idempotency) and the storage kernel (`store`), which sit
above `common` (errors, logs, settings, HTTP plumbing, ids). Imports only go downward.
"""
