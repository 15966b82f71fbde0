"""capture, the first stage process (`python -m stages.capture`): a microphone or a recording in, `audio` frames out."""

# The listen commands capture takes (listening.py): named here, so that `voxkey listen`
# offers them without importing capture's records.
LISTEN_COMMANDS = ("on", "off", "toggle", "hold", "release")
