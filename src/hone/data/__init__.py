"""The data plane: sources read through DuckDB, schema inference, the split, Arrow batch streams."""
