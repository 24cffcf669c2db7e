"""Events out: what the ledger publishes when Firestore commits a change (CONTRACT section 8)."""
