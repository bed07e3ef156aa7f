"""Calls: the registry fed by line events, the call log, visibility and call control."""
