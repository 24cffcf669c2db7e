"""Firestore storage: the client and its faults, collection names, one-user and many-user commits, scans."""
