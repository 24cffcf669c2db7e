"""Promotional grants from Pub/Sub: the message schema, the grant service, rejected messages."""
