"""One module per panel of the cadence dashboard. Each ``load(filters, now)`` returns a frozen
dataclass whose ``figures()`` the page draws (chart + table) and the CSV export writes."""
