"""keys, the last stage process (`python -m stages.keys`): keystrokes in, typed into the focused app by a sink."""
