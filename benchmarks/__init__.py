"""trio-mcp benchmarks (run from the repo root)."""
