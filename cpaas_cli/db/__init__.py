"""Database engine, sessions, base column types and migrations."""
