"""router, a stage process (`python -m stages.router`): transcripts in, keystrokes or model requests out."""
