"""Spending credits and reading balances and history: the `spend` function's feature."""
