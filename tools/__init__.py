"""Command-line tools for people who operate the credit system (run as `python -m tools.<name>`)."""
