"""SMS: outbound jobs, the modem pool, inbound messages in the CRM, campaigns."""
