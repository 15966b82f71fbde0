"""voxkey's stages: each module runs as its own process, `python -m stages.NAME`."""
