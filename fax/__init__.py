"""Fax line adapters: Asterisk over AMI, HylaFAX, the spandsp engine, the document pipeline."""
