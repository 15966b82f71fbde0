"""The raw baseline: the same work without the pipeline, in this one process.

* ASR: the recording is cut into utterances exactly as the vad stage cuts it (its
  Segmenter and streaming Silero, same settings), so utterance ids match the
  pipeline's; each utterance goes straight to faster-whisper with the asr stage's
  model, compute type, thread count, OpenMP wait policy, beam size and decoding options. Measured: the
  wall time of one transcription (all segments consumed).
* LLM: the requests the router really sent in the pipeline run, laid out with the same
  prompt builder (stages/llm/prompts.py over models/prompts.toml), to llama-cpp-python with the
  stage's GGUF, context size, threads, wait policy, sampling settings, stop strings and seed.
  The wait policy is the OpenMP runtime's, read once when an engine's library loads:
  the first engine this process loads sets it for both (every stage's default is the
  same, `passive`), and a policy exported before the bench wins, as for a stage.
  Measured like stages.llm.stage.Metrics: time to first token from the call, tokens/s from the
  first token to the last. Each request is measured from two cache states: *warm*, as the
  stage had it (each pipeline recording runs in fresh processes, and a stage evaluates
  each mode's system prompt before it reports ready, so the request finds its own
  cached: the like-for-like baseline), and *cold*, with nothing of the prompt cached.
  Each measurement is repeated and its median kept.
  Converse runs only the Thinking model's first turn (no tool round trips), so its
  tokens/s is a decoding rate, while the pipeline's also spans tool calls.
"""

import time
import zlib

import numpy as np

from bench.stats import percentile
from bus import cpus as cpu_plan
from bus.frames import SAMPLE_RATE
from stages.asr import stage as asr_stage
from stages.llm import stage as llm_support
from stages.llm.prompts import PromptBook
from stages.thinking.tools import tool_specs
from stages.vad import segmenting

REPEATS = 3  # each raw measurement is the median of this many, so one hiccup does not set the baseline
SEGMENTER_KEYS = ("threshold", "end_of_speech_ms", "pre_roll_ms", "post_roll_ms", "min_speech_ms", "max_utterance_s")
LLM_STAGE_OF_MODE = {"clarify": "instruct", "chat": "instruct", "converse": "thinking"}
TIMINGS = ("ttft_ms", "tokens_per_s", "total_ms")


def utterances(samples: np.ndarray, vad_settings: dict) -> list[segmenting.Utterance]:
    """The utterances the vad stage would send (no guesses: those are not utterances)."""
    model = segmenting.StreamingSilero(segmenting.silero_path())
    segmenter = segmenting.Segmenter(**{key: vad_settings[key] for key in SEGMENTER_KEYS}, guess=False)
    window = segmenting.WINDOW
    found = []
    padded = np.concatenate([samples, np.zeros(-len(samples) % window, np.int16)])
    for offset in range(0, len(padded), window):
        chunk = padded[offset : offset + window]
        found += segmenter.push(chunk, model(chunk.astype(np.float32) / 32768.0), offset, 0)
    return found + segmenter.flush()


def segment(samples: np.ndarray, stream: str, vad_settings: dict) -> list[tuple[str, np.ndarray]]:
    """(utterance id, int16 audio) for each utterance the vad stage would send."""
    return [(segmenting.utterance_id(stream, u.start_sample), u.audio) for u in utterances(samples, vad_settings)]


class Whisper:
    """The asr stage's engine, loaded and warmed as the stage does it."""

    def __init__(self, settings: dict):
        cpu_plan.apply_wait_policy(str(settings.get("wait") or "default"))  # as the stage, before it loads
        from faster_whisper import WhisperModel

        self.settings = settings
        self.threads = cpu_plan.for_stage("asr", settings).threads
        self.model = WhisperModel(
            asr_stage.resolve_model(str(settings["model"])),
            device="cpu",
            compute_type=settings["compute_type"],
            cpu_threads=self.threads,
        )
        self.transcribe(np.zeros(SAMPLE_RATE, np.int16))  # the stage warms up the same way

    def transcribe(self, audio: np.ndarray) -> tuple[float, str]:
        """(milliseconds, text) for one utterance. The asr stage's own decoding call is
        borrowed (it needs only `model` and `settings`), so the options cannot drift
        apart from what the pipeline runs."""
        started = time.perf_counter()
        segments = asr_stage.Asr._transcribe(self, audio.astype(np.float32) / 32768.0)
        return (time.perf_counter() - started) * 1000, " ".join(s.text.strip() for s in segments).strip()


def asr_baseline(config: dict, recordings: list[tuple[str, np.ndarray]]) -> list[dict]:
    """One row per utterance of each (stream name, samples) recording."""
    whisper = Whisper(config["stages"]["asr"])
    rows = []
    for stream, samples in recordings:
        for utt, audio in segment(samples, stream, config["stages"]["vad"]):
            runs = [whisper.transcribe(audio) for _ in range(REPEATS)]
            ms = percentile([ms for ms, _ in runs], 50)
            rows.append(
                {
                    "utt": utt,
                    "audio_s": round(len(audio) / SAMPLE_RATE, 2),
                    "transcribe_ms": round(ms, 1),
                    "text": runs[0][1],
                }
            )
    return rows


class Model:
    """One model stage's engine, loaded as stages.llm.stage.LlmStage loads it."""

    def __init__(self, settings: dict, stage: str = "instruct"):
        cpu_plan.apply_wait_policy(str(settings.get("wait") or "default"))  # as the stage, before it loads
        from llama_cpp import Llama

        engine = cpu_plan.for_stage(stage, settings)
        self.settings = settings
        self.llm = Llama(
            model_path=str(llm_support.resolve_model(str(settings["model"]))),
            n_ctx=int(settings["context_tokens"]),
            n_threads=engine.threads,
            n_threads_batch=engine.batch,
            verbose=False,
        )
        self.book = PromptBook.for_model(self.llm.metadata, str(settings.get("format") or ""))

    def prompt(self, mode: str, text: str | None, language: str = "") -> str:
        """The request's prompt; with no text, the system prompt alone, as the stage warms up."""
        messages = [] if text is None else [self.book.user(mode, text)]
        tools = tool_specs() if mode == "converse" else None
        return self.book.prompt(mode, messages, tools, generation=text is not None, language=language)

    def fresh(self, mode: str, warm: bool) -> None:
        """As a newly started stage (warm: the mode's system prompt evaluated, as the
        stage does before it reports ready), or cold: nothing of any prompt cached."""
        self.llm.reset()
        warm_up = self.prompt(mode, None) if warm else self.book.layout["generation"]
        self.llm.create_completion(warm_up, max_tokens=1)

    def generate(self, utt: str, mode: str, text: str) -> dict:
        return self.complete(utt, mode, self.prompt(mode, text))[0]

    def complete(self, utt: str, mode: str, prompt: str) -> tuple[dict, str]:
        """Stream `prompt`'s completion as the stage does (its sampling, stop strings, and
        seed by the utterance): the measures, and the text the model wrote."""
        settings = self.settings
        prompt_tokens = len(self.llm.tokenize(prompt.encode(), add_bos=False, special=True))
        started = time.perf_counter_ns()
        first = last = 0
        pieces = []
        for chunk in self.llm.create_completion(
            prompt,
            max_tokens=self.book.max_tokens(mode),
            temperature=float(settings["temperature"]),
            top_k=int(settings["top_k"]),
            top_p=float(settings["top_p"]),
            stop=self.book.stop(mode),
            seed=zlib.crc32(utt.encode()),
            stream=True,
        ):
            pieces.append(chunk["choices"][0]["text"])
            last = time.perf_counter_ns()
            first = first or last
        end = time.perf_counter_ns()
        tokens = len(pieces)
        decoding_s = (last - first) / 1e9 if first else 0.0  # first to last token, as stages.llm.stage.Metrics
        measures = {
            "utt": utt,
            "mode": mode,
            "prompt_tokens": prompt_tokens,
            "tokens": tokens,
            "ttft_ms": round((first - started) / 1e6, 2) if first else 0.0,
            "tokens_per_s": round((tokens - 1) / decoding_s, 1) if tokens > 1 and decoding_s > 0 else 0.0,
            "total_ms": round((end - started) / 1e6, 2),
        }
        return measures, "".join(pieces)


def llm_baseline(config: dict, requests: list[dict]) -> list[dict]:
    """The pipeline's model requests, in the order they were made, each on a fresh
    model: warm (the keys without prefix) and cold (`cold_` keys)."""
    models: dict[str, Model] = {}
    rows = []
    for request in requests:
        stage = LLM_STAGE_OF_MODE[request["mode"]]
        if stage not in models:
            models[stage] = Model(config["stages"][stage], stage)
        model = models[stage]
        runs = {True: [], False: []}
        for _ in range(REPEATS):
            for warm in (True, False):  # alternated, so a busy moment weighs on both alike
                model.fresh(request["mode"], warm)
                runs[warm].append(model.generate(request["utt"], request["mode"], request["text"]))
        # The seed is fixed, so every run generates the same tokens: only timings differ.
        warm = {key: percentile([run[key] for run in runs[True]], 50) for key in TIMINGS}
        cold = {f"cold_{key}": percentile([run[key] for run in runs[False]], 50) for key in TIMINGS}
        rows.append({**runs[True][0], **warm, **cold, "llm_stage": stage})
    return rows
