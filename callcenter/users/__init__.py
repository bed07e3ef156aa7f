"""User administration: the rules the API and the command line share."""
