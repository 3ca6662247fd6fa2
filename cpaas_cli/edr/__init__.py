"""EDRs: one record per message attempt, their ingest and rating."""
