"""Channel affinity and send-time optimisation: pure models over plain values, and their proof.

- ``affinity``: per (customer, channel) a recency-weighted engagement estimate shrunk
  toward the population (Beta-Binomial), updated in O(1) per send or receipt.
- ``choice``: ``choose_channel``, the best posterior among available channels, fallback
  order, cold start, Thompson-sampling exploration, and ``Choice.explain()``.
- ``sendtime``: the hour-of-week profile in local time, smoothed toward cohort and
  population, and ``best_time`` within a window outside quiet hours.
- ``decide``: ``choose_send``, channel and moment chosen together under quiet hours.
- ``beta``: the Beta CDF and quantiles (credible intervals) without scipy.
- ``simulate``, ``scenario`` and ``harness``: a population with known ground truth played
  through the models against fixed, random and oracle policies (``bench/intelligence.py``).
- ``ledger``: reads Message and Event rows into the values above.
- Stored and wired: ``store`` (ChannelAffinity, ActivityProfile, PopulationModel),
  ``activity`` (activity profiles upserted per batch), ``hooks`` (the ledger's and
  ingestion's listeners), ``recompute``, ``journeys`` (best-channel sends, best-time
  delays) and ``card`` (the customer profile's explanation).
"""
