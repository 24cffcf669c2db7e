"""The ledger: accounts and their entries, transaction records, the document codec, idempotency."""
