"""The global frequency governor: one authority over every channel's sends.

- ``policy``: the admin-managed policy as frozen values (caps, spacing, quiet hours).
- ``rules``: ``judge()``, the pure decision over a policy, a candidate send and the
  customer's recent messages: allow, defer until a moment, or suppress with the rule and
  the counts it saw.

Wiring into the send path (``orchestrator.dispatch.decide``) with the customer's row
locked, priority arbitration and verdict records build on these.
"""
