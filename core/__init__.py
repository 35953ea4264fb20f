"""Crossdock: receive customer data once, forward it to every enabled destination.

A message travels accept -> profile -> route -> outbox -> deliver (see docs/architecture.md);
each step has its own module or package of the same name.
"""

__version__ = "0.1.0"
