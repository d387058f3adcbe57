"""Faithful re-implementations of the designs trio-mcp replaces, for side-by-side runs.

Written from the descriptions in ``shared/seeds/``; no handicaps beyond what each
design itself imposes. Both drive the same ``mcp.Client`` as everything else.
"""
