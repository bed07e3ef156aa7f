"""Routing: which calls pop up for which secretaries, the office's hours for callbacks, the
default region for numbers, and the extension <-> user mapping."""
