"""thinking, a stage process (`python -m stages.thinking`): converse requests in, reasoned answers out."""
