"""Step 4: the durable outbox, one row per (destination, message).

`open_outbox(url)` picks the implementation from the URL: sqlite:///path (embedded default) or
postgresql://... (many daemons). Both implement `Outbox` in base.py and pass the same tests.
"""
