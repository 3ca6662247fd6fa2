"""Messages sent one by one (the HTTP API): queued on the campaigns' outbound
queue, charged by the same core, read back by id or label."""
