"""Reports over the call log, tasks, SMS and faxes (issue 12): see model.py for the contract."""
