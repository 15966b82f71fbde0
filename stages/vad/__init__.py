"""vad: the stage (stage.py) and the cutting of a stream into utterances (segmenting.py)."""
