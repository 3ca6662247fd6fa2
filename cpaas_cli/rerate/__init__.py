"""EDR re-rating tasks."""
