"""Lines: every kind (Asterisk, GSM modem, fax backend, SIP) behind one lifecycle."""
