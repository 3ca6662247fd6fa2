"""Writing files: the row writers (CSV, TSV, XLSX, JSONL) of every export and list output."""
