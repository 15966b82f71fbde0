"""The memory budget: what the stages hold with the embedded models, how much of it is
not model weights, and what the production set would need on a 4 GB Raspberry Pi.
METHOD says how; it is written into every report."""

import struct
from pathlib import Path

from bus import models
from stages.asr import stage as asr_stage
from stages.llm import stage as llm_support
from stages.vad import segmenting

METHOD = (
    "Measured: each process's peak resident set (VmHWM) in the recording whose processes peaked highest; "
    "summing peaks over-states a little (they need not coincide). PSS counts pages shared between processes "
    "(libraries, a model file two stages map) once.",
    "Not model weights: a stage's peak RSS minus the size of the model files it loads. An estimate: llama.cpp "
    "maps the GGUF whole and warm-up touches all of it; CTranslate2 converts Whisper's float16 weights to int8 "
    "on load, so for asr the weights take less than the file and the rest is under-stated.",
    "Production projection, per stage: measured peak RSS, minus the embedded model files and KV cache, plus the "
    "production model files (sizes from models/manifest.toml) and their KV cache at the configured context size. "
    "KV cache: f16 K and V per attention layer, 2 x layers x kv_heads x head_dim x 2 bytes per token; the embedded "
    "GGUF's shape is read from its metadata, LFM2.5-1.2B's is its published configuration (6 attention layers of 16, "
    "8 KV heads of 64; the 10 convolution layers keep a few KB of state).",
    "Everything else (runtime, compute buffers, Python) is assumed to stay as measured, which under-states for the "
    "larger models (wider activations, a 65,536-token vocabulary against SmolLM2's 49,152). The OS's share of the "
    "4 GiB is not included.",
)
MB = 1e6
BUDGET_BYTES = 4 * 1024**3  # Raspberry Pi 5, 4 GB (GiB of LPDDR4X), before the OS takes its share
LLM_STAGES = ("instruct", "thinking")
# LFM2.5-1.2B (Instruct and Thinking share it): LFM2-1.2B's published config.json.
LFM25_SHAPE = {"attention_layers": 6, "kv_heads": 8, "head_dim": 64}
PRODUCTION = {"asr": "whisper-base.en", "instruct": "lfm2.5-1.2b-instruct", "thinking": "lfm2.5-1.2b-thinking"}


def kv_cache_bytes(shape: dict, context_tokens: int, bytes_per_value: int = 2) -> int:
    return 2 * shape["attention_layers"] * shape["kv_heads"] * shape["head_dim"] * bytes_per_value * context_tokens


def gguf_shape(metadata: dict) -> dict:
    """Attention shape from GGUF metadata (`ARCH.block_count` and friends)."""
    arch = metadata["general.architecture"]
    heads = int(metadata[f"{arch}.attention.head_count"])
    head_dim = int(metadata.get(f"{arch}.attention.key_length") or int(metadata[f"{arch}.embedding_length"]) // heads)
    return {
        "attention_layers": int(metadata[f"{arch}.block_count"]),
        "kv_heads": int(metadata[f"{arch}.attention.head_count_kv"]),
        "head_dim": head_dim,
    }


def path_bytes(path: Path) -> int:
    path = Path(path)
    if path.is_dir():
        return sum(child.stat().st_size for child in path.iterdir() if child.is_file())
    return path.stat().st_size


def current_models(config: dict) -> dict:
    """Per stage: the model files it loads, in bytes."""
    stages = config["stages"]
    sizes = {
        "vad": path_bytes(Path(segmenting.silero_path())),
        "asr": path_bytes(Path(asr_stage.resolve_model(str(stages["asr"]["model"])))),
    }
    for stage in LLM_STAGES:
        sizes[stage] = path_bytes(llm_support.resolve_model(str(stages[stage]["model"])))
    return sizes


def current_kv(config: dict) -> dict:
    """Per model stage: its KV cache in bytes, from the GGUF's own metadata."""
    sizes = {}
    for stage in LLM_STAGES:
        settings = config["stages"][stage]
        metadata = gguf_metadata(llm_support.resolve_model(str(settings["model"])))
        sizes[stage] = kv_cache_bytes(gguf_shape(metadata), int(settings["context_tokens"]))
    return sizes


# GGUF value types (ggml's gguf.h) and how each scalar is packed; 8 is a string, 9 an array.
GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def gguf_metadata(path: Path) -> dict:
    """The key/value header of a GGUF file (version 2 or 3), read without loading the
    model: llama.cpp would build a context and log to stderr for it."""
    with open(path, "rb") as file:
        magic, _version, _tensors, count = struct.unpack("<4sIQQ", file.read(24))
        if magic != b"GGUF":
            raise ValueError(f"{path} is not a GGUF file")
        return {_gguf_string(file): _gguf_value(file, struct.unpack("<I", file.read(4))[0]) for _ in range(count)}


def _gguf_string(file) -> str:
    (length,) = struct.unpack("<Q", file.read(8))
    return file.read(length).decode("utf-8", "replace")


def _gguf_value(file, kind: int):
    if kind == 8:
        return _gguf_string(file)
    if kind == 9:
        item_kind, length = struct.unpack("<IQ", file.read(12))
        return [_gguf_value(file, item_kind) for _ in range(length)]
    layout = GGUF_SCALARS[kind]
    return struct.unpack(layout, file.read(struct.calcsize(layout)))[0]


def production_models(manifest=None) -> dict:
    """Per stage: the production model's files, in bytes, from models/manifest.toml."""
    catalogue = models.load_manifest(manifest).models
    return {stage: sum(f.size for f in catalogue[name].files) for stage, name in PRODUCTION.items()}


def production_kv(config: dict) -> dict:
    return {stage: kv_cache_bytes(LFM25_SHAPE, int(config["stages"][stage]["context_tokens"])) for stage in LLM_STAGES}


def budget(peaks: dict, pss: dict, model_bytes: dict, kv_now: dict, model_next: dict, kv_next: dict) -> dict:
    """The whole report from measured peaks (name -> bytes, supervisord included) and
    model sizes. Pure."""
    stages = {}
    for name, peak in sorted(peaks.items()):
        weights = model_bytes.get(name, 0)
        projected = (
            peak
            - weights
            - kv_now.get(name, 0)
            + model_next.get(name, weights)
            + kv_next.get(name, kv_now.get(name, 0))
        )
        stages[name] = {
            "peak_rss_mb": round(peak / MB, 1),
            "pss_mb": round(pss.get(name, 0) / MB, 1),
            "model_files_mb": round(weights / MB, 1),
            "not_weights_mb": round(max(0, peak - weights) / MB, 1),
            "kv_cache_mb": round(kv_now.get(name, 0) / MB, 1),
            "production_mb": round(projected / MB, 1),
            "production_model_mb": round(model_next.get(name, weights) / MB, 1),
            "production_kv_mb": round(kv_next.get(name, kv_now.get(name, 0)) / MB, 1),
        }
    total_projected = sum(s["production_mb"] for s in stages.values())
    return {
        "stages": stages,
        "total_peak_rss_mb": round(sum(peaks.values()) / MB, 1),
        "total_pss_mb": round(sum(pss.values()) / MB, 1),
        "total_model_files_mb": round(sum(model_bytes.values()) / MB, 1),
        "total_not_weights_mb": round(sum(s["not_weights_mb"] for s in stages.values()), 1),
        "production_total_mb": round(total_projected, 1),
        "budget_mb": round(BUDGET_BYTES / MB, 1),
        "production_share_of_budget": round(total_projected * MB / BUDGET_BYTES, 3),
        "production_headroom_mb": round(BUDGET_BYTES / MB - total_projected, 1),
        "method": list(METHOD),
    }


def report(config: dict, stage_summaries: list[dict]) -> dict:
    """The budget from the run (one dict of stage summaries per recording) whose
    stages held the most memory at their peaks."""
    heaviest = max(stage_summaries, key=lambda stages: sum(s["peak_rss"] for s in stages.values()))
    peaks = {name: s["peak_rss"] for name, s in heaviest.items()}
    pss = {name: s["pss"] for name, s in heaviest.items()}
    return budget(peaks, pss, current_models(config), current_kv(config), production_models(), production_kv(config))
