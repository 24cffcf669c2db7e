"""The support console (functions/console): pages to find a user, read their ledger and put
things right, every action taken through the features' services and audited."""
