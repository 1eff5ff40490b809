"""Receipts from providers: Twilio status callbacks and inbound SMS, ESP tracking events.

Every webhook verifies the provider's signature before reading anything, records the
event under its unique provider event id (a duplicate or replay changes nothing), moves
the message along the ledger (never backwards) and answers at once. URLs:
channels_app/webhook_urls.py.
"""
