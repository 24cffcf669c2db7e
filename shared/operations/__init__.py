"""Operator work: adjustments, legacy migration, reconciliation and usage reports."""
