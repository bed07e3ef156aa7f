"""Faxes: outbound fax jobs, the inbox, and the backends behind one interface."""
