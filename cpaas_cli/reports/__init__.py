"""Reports: traffic summaries, charts, campaign breakdowns and saved SQL reports."""
