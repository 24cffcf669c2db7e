"""The shared kernel: errors, structured logs, settings, HTTP plumbing, field rules and derived ids."""
