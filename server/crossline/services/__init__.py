"""Services own transactions and combine storage with the homeserver. No HTTP request objects here."""
