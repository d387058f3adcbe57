"""Drop-in replacements for the MCP layers trio-mcp descends from."""
