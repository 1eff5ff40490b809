"""Cross-channel measurement: pure reads of the ledger (enrollments, messages, events).

- ``kpis.journey_kpis``: entered, in progress, converted, revenue per group, and the lift
  against the holdout with its confidence interval (``stats``).
- ``sequences.touch_sequences``: the channel orders before conversion, with their rates.
- ``ledger.journey_attribution``: first/last touch, linear, time-decay and position-based
  credit per channel and per journey over a chosen lookback (the rules in ``credit``, as
  SQL the database runs over every touch; the table in ``attribution``).
- ``paths.conversion_path``: one enrollment's touches and conversion.

Nothing here writes. Pages live in journeys/measure_views.py.
"""
