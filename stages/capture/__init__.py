"""capture, the first stage process (`python -m stages.capture`): a microphone or a recording in, `audio` frames out."""
