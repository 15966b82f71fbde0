"""asr: the stage (stage.py), its guards against invented text (guards.py) and the
encoding of an utterance at its own length (encoding.py)."""

from stages.asr.stage import resolve_model  # noqa: F401 (voxkey doctor resolves the model through it)
