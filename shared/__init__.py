"""Two-pool credits: the package every function imports (core rules, models, store, services)."""
