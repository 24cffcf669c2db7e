"""`credits`, the operator's command line: `__main__` parses and dispatches, `commands` holds one
module per command (its arguments beside its handler), `output` prints tables, JSON and progress."""
