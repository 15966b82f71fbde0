"""`voxkey bench`: replay recordings through the real pipeline and measure it.

    voxkey bench [RECORDING ...] [--pinning] [--bus] [--no-raw] [--out DIR]
                 [--config FILE] [--set section.key=value ...]
    voxkey bench [RECORDING ...] [--soak MINUTES] [--recovery [--kill-rounds N]]
    voxkey bench --typing [--repeats N]
    voxkey bench --commands
    voxkey bench --lifecycle [--idle-seconds S]
    voxkey bench --endpointing [--seed N]
    voxkey bench --conversation
    voxkey bench --modes
    voxkey bench --hallucination
    voxkey bench --cancel
    voxkey bench --recognition | --load | --slow | --threads
    voxkey bench --languages | --embedded-llm | --two-hosts

Without recordings it uses the speech fixtures in tests/audio. It writes
bench/results/<timestamp>.json, a Markdown summary next to it (also printed) and PNG
plots, and returns 0. `--typing` measures each typing backend into a real app instead,
`--commands` how long a key binding's command takes against a running voxkey,
`--lifecycle` what `voxkey up` costs while nobody speaks and how fast each signal stops
it, `--endpointing` how soon words are on screen after speech really ends (sentences
with and without pauses inside, each arm of settings at real time), `--conversation`
whether a follow-up's time to first token stays close to the first turn's as the
conversation grows, `--modes` how well spoken mode prefixes are recognised
(tests/audio/modes, made by `python -m bench.modeset`), `--hallucination` what asr's
guards drop of short replies and of sounds nobody spoke (tests/audio/short, made by
`python -m bench.shortreplies`), the pauses word timings find after a mode's name, and
what the timings cost, `--cancel` how soon a spoken "cancel" stops a thinking request
(quiet and beside a busy process), `--languages` word errors and recognition time per
language and Whisper model (tests/audio/languages, made by `python -m bench.languageset`),
`--embedded-llm` the embedded instruct models on clarify, chat and follow-up requests
in four languages, `--two-hosts` what the link costs with asr and the models on another
host (two network namespaces here; root) and what a cut of it costs. `--soak` and `--recovery`
measure endurance instead of latency: the recordings looped for minutes through one
pipeline (memory over time, utterances typed against expected), and stages killed one at
a time (recovery time).
`python -m bench` is the same command.
"""

import argparse
import importlib
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from bus import config as configuration
from bus import models
from bus.frames import SAMPLE_RATE
from bus.stage import StageError
from stages.capture import audio
from voxkey import settings as configured
from voxkey.replay import ReplayError

BENCH = Path(__file__).resolve().parent
AUDIO = BENCH.parent / "tests" / "audio"
DEFAULT_RECORDINGS = (
    "session_dictation.wav",
    "chat_capital.wav",
    "clarify_launch.wav",
    "converse_math.wav",
    "jfk.flac",
)
RESULTS = BENCH / "results"
# Benches run as `markdown(measure(config, AUDIO, out, say))`, each by its flag; imported
# only when asked for, so `voxkey --help` and the other commands stay quick.
ON_THE_FIXTURES = ("conversation", "cancel", "recognition", "load", "slow", "languages", "two_hosts")
# The same without AUDIO: they read their own sets (tests/audio/modes, tests/audio/short).
ON_THEIR_OWN_SETS = ("hallucination", "modes")


def configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "recordings",
        nargs="*",
        help=f"recordings to replay (default: {', '.join(DEFAULT_RECORDINGS)} from tests/audio)",
    )
    parser.add_argument("--out", default=str(RESULTS), help="where results go (default: bench/results)")
    parser.add_argument(
        "--tail-silence", type=float, default=1.0, metavar="S", help="silence appended to each recording, seconds"
    )
    parser.add_argument("--no-raw", action="store_true", help="skip the raw (pipeline-free) baseline")
    parser.add_argument("--pinning", action="store_true", help="also run the CPU pinning experiment")
    parser.add_argument(
        "--layout",
        action="append",
        default=[],
        metavar="STAGE[,STAGE]=CPU[,CPU]",
        help="pinning layout (default: capture,vad,router,keys on the first core, the engines on the rest)",
    )
    parser.add_argument(
        "--gap", type=float, default=0.5, metavar="S", help="pinning fixture: silence between chat and dictation"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        metavar="N",
        help="pinning experiment: replays of each workload per arm; typing: runs of each text",
    )
    parser.add_argument(
        "--bus", action="store_true", help="also run the bus microbenchmark (alone: python -m bench.bus)"
    )
    parser.add_argument("--bus-frames", type=int, default=20_000, help=argparse.SUPPRESS)
    parser.add_argument("--bus-latency-frames", type=int, default=2_000, help=argparse.SUPPRESS)
    parser.add_argument(
        "--soak", type=float, metavar="MINUTES", help="replay the recordings in a loop for MINUTES at real time"
    )
    parser.add_argument(
        "--recovery", action="store_true", help="kill each stage in turn during a replay and time its recovery"
    )
    parser.add_argument("--kill-rounds", type=int, default=3, metavar="N", help="recovery: kills per stage")
    parser.add_argument(
        "--settle",
        type=float,
        default=4.0,
        metavar="S",
        help="recovery: mean pause between a stage's return and the next kill",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="recovery: seed for the kill moments; endpointing: for the pauses (default: random, printed)",
    )
    parser.add_argument(
        "--gap-between",
        type=float,
        default=None,
        metavar="S",
        help="soak and recovery: silence after each recording in the loop (default 3 s for the soak, 6 s for recovery)",
    )
    parser.add_argument(
        "--typing",
        action="store_true",
        help="measure typing speed per backend into real apps (alone: python -m bench.typing_speed)",
    )
    parser.add_argument(
        "--commands",
        action="store_true",
        help="how long a key binding's voxkey listen/mode/cancel/status takes (alone: python -m bench.commands)",
    )
    parser.add_argument(
        "--lifecycle",
        action="store_true",
        help="idle CPU per process and stop time per signal of voxkey up (alone: python -m bench.lifecycle)",
    )
    parser.add_argument(
        "--idle-seconds", type=float, default=30.0, metavar="S", help="lifecycle: length of each idle window"
    )
    parser.add_argument(
        "--endpointing",
        action="store_true",
        help="end of speech to keystrokes against the recording, guessing or waiting",
    )
    parser.add_argument(
        "--conversation",
        action="store_true",
        help="time to first token by turn of a chat and a converse conversation, and with a clarify between",
    )
    parser.add_argument(
        "--modes",
        action="store_true",
        help="mode prefixes routed right and look-alikes left as dictation, on tests/audio/modes",
    )
    parser.add_argument(
        "--hallucination",
        action="store_true",
        help="asr's guards on short replies and non-speech (tests/audio/short), word pauses and their cost",
    )
    parser.add_argument(
        "--cancel",
        action="store_true",
        help='end of speech of a spoken "cancel" to the thinking request stopped, quiet and beside a busy process',
    )
    parser.add_argument(
        "--recognition",
        action="store_true",
        help="word errors and recognition time of the utterance-length encode against the padded 30 s one, every set",
    )
    parser.add_argument(
        "--load",
        action="store_true",
        help="the real-time streams beside CPU hogs (one per half of the cores, one per core), with the raw engines",
    )
    parser.add_argument(
        "--slow",
        action="store_true",
        help="the pipeline on fewer cores or a CPU quota: how latency grows as compute shrinks, a Pi 5 projected",
    )
    parser.add_argument(
        "--threads",
        action="store_true",
        help="each engine by thread count and OpenMP wait policy, quiet and beside busy processes",
    )
    parser.add_argument(
        "--languages",
        action="store_true",
        help="word errors, recognition time and commands heard per language and Whisper model (tests/audio/languages)",
    )
    parser.add_argument(
        "--embedded-llm",
        action="store_true",
        help="the embedded instruct models compared on clarify, chat and follow-ups in four languages",
    )
    parser.add_argument(
        "--two-hosts",
        action="store_true",
        help="end of speech to first key with asr and the models on another host (network namespaces), a link cut",
    )
    parser.add_argument("--config", help="a TOML file laid over the defaults")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one setting")
    return parser


def add_cli(subparsers) -> None:
    """The `bench` subcommand of `voxkey` (voxkey.cli's parser)."""
    command = subparsers.add_parser("bench", help="measure latency, CPU, memory and the bus on recordings")
    configure(command)
    command.set_defaults(run=run)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def settings_summary(config: dict) -> str:
    stages = config["stages"]
    asr = stages["asr"]
    return (
        f"asr {asr['model']} {asr['compute_type']} beam {asr['beam_size']}; "
        f"instruct {stages['instruct']['model']} ctx {stages['instruct']['context_tokens']}; "
        f"thinking {stages['thinking']['model']} ctx {stages['thinking']['context_tokens']}; "
        f"vad end of speech {stages['vad']['end_of_speech_ms']} ms; keys sink {stages['keys']['sink']}"
    )


def run(args) -> int:
    """The subcommand's handler. Failures voxkey's own CLI does not report (a model
    file missing for the raw baseline, a malformed layout) are reported here."""
    try:
        return measure(args)
    except (StageError, ValueError, audio.UnreadableAudio) as error:
        print(f"voxkey bench: {error}", file=sys.stderr)
        return 1


def measure(args) -> int:
    # Imported here so `voxkey --help` and the other commands stay quick.
    from bench import bus as bus_bench
    from bench import memory, pinning, procs, raw, report

    if args.typing:
        from bench import sessions, typing_speed

        return sessions.run_on_sessions(
            lambda say: typing_speed.run(args.repeats, Path(args.out), say), typing_speed.markdown, say
        )
    if args.commands:
        from bench import commands, sessions

        return sessions.run_on_sessions(lambda say: commands.run(out=Path(args.out), say=say), commands.markdown, say)
    if args.lifecycle:
        from bench import lifecycle

        return lifecycle.measure(args.idle_seconds, args.set, Path(args.out), say)
    config = configured.load(args.config, args.set)
    if args.endpointing:
        from bench import endpointing

        print(endpointing.markdown(endpointing.measure(config, AUDIO, Path(args.out), args.seed, say)))
        return 0
    if args.embedded_llm:
        from bench import embedded_llm

        print(embedded_llm.markdown(embedded_llm.measure(config, Path(args.out), say)))
        return 0
    if args.threads:
        from bench import threads

        print(threads.markdown(threads.measure(config, AUDIO, Path(args.out), say, args.set)))
        return 0
    for name in ON_THE_FIXTURES:
        if getattr(args, name):
            bench = importlib.import_module(f"bench.{name}")
            print(bench.markdown(bench.measure(config, AUDIO, Path(args.out), say)))
            return 0
    for name in ON_THEIR_OWN_SETS:
        if getattr(args, name):
            bench = importlib.import_module(f"bench.{name}")
            print(bench.markdown(bench.measure(config, Path(args.out), say)))
            return 0
    recordings = [Path(p) for p in args.recordings] or [AUDIO / name for name in DEFAULT_RECORDINGS]
    for recording in recordings:  # fail before minutes of work, not after
        audio.probe(recording)
    layout = (
        pinning.parse_layout(args.layout) if args.layout else pinning.default_layout(sorted(os.sched_getaffinity(0)))
    )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    host = {
        "timestamp": stamp,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }
    settings = {"tail_silence_s": args.tail_silence, "summary": settings_summary(config)}
    if args.soak or args.recovery:
        return measure_endurance(args, config, recordings, host, settings)
    raw_results = pinning_results = bus_results = None
    before = procs.machine_reading()
    with tempfile.TemporaryDirectory(prefix="voxkey-bench-") as work:
        runs, prepared = replay_all(config, recordings, Path(work), args.tail_silence)
        if not args.no_raw:
            say("bench: raw baseline (faster-whisper and llama-cpp-python in this process)")
            requests = [request for result in runs for request in result["requests"]]
            raw_results = {"asr": raw.asr_baseline(config, prepared), "llm": raw.llm_baseline(config, requests)}
        say("bench: memory budget")
        budget = memory.report(config, [result["stages"] for result in runs])
        if args.pinning:
            pinning_results = pinning.run(
                config, AUDIO, Path(work), layout, args.gap, args.tail_silence, args.repeats, say
            )
    if args.bus:
        say("bench: bus microbenchmark")
        bus_results = bus_bench.run(args.bus_frames, args.bus_latency_frames)
    host["load"] = procs.foreign_load(before, procs.machine_reading(), os.cpu_count() or 1)
    results = report.assemble(host, settings, runs, raw_results, budget, pinning_results, bus_results)
    audio_wire_ms = [ms for result in runs for _, ms in result["wire"].get("capture/audio", [])]
    print(write_results(results, audio_wire_ms, Path(args.out), stamp))
    return 0


def measure_endurance(args, config: dict, recordings: list[Path], host: dict, settings: dict) -> int:
    from bench import endurance_report, plots, procs, recovery, report, soak

    if args.soak is not None and args.soak <= 0:
        raise ValueError("--soak needs a positive number of minutes")
    results = {"schema": report.SCHEMA, "host": host, "settings": settings, "soak": None, "recovery": None}
    before = procs.machine_reading()
    with tempfile.TemporaryDirectory(prefix="voxkey-bench-") as work:
        if args.soak:
            gap = soak.GAP_S if args.gap_between is None else args.gap_between
            results["soak"] = soak.run(config, recordings, args.soak, Path(work), gap, args.tail_silence, say)
        if args.recovery:
            seed = args.seed if args.seed is not None else time.time_ns() % 100_000
            gap = recovery.GAP_S if args.gap_between is None else args.gap_between
            results["recovery"] = recovery.run(
                config, recordings, args.kill_rounds, args.settle, Path(work), gap, args.tail_silence, seed, say
            )
    host["load"] = procs.foreign_load(before, procs.machine_reading(), os.cpu_count() or 1)
    out, stamp = Path(args.out), host["timestamp"]
    out.mkdir(parents=True, exist_ok=True)
    results["files"] = {"json": str(out / f"{stamp}-endurance.json"), "markdown": str(out / f"{stamp}-endurance.md")}
    if results["soak"]:
        results["files"]["rss_png"] = str(plots.rss_over_time(results["soak"]["series"], out / f"{stamp}-soak-rss.png"))
    summary = endurance_report.endurance_markdown(results)
    Path(results["files"]["markdown"]).write_text(summary)
    Path(results["files"]["json"]).write_text(report.to_json(results))
    print(summary)
    return 0


def replay_all(config: dict, recordings: list[Path], work_dir: Path, tail_silence_s: float) -> tuple[list, list]:
    """Each recording through the pipeline: the runs, and (stream name, samples) of what was replayed."""
    from bench import pipeline

    runs, prepared = [], []
    for recording in recordings:
        path, samples = pipeline.prepare_recording(recording, work_dir, tail_silence_s)
        prepared.append((path.stem, samples))
        say(f"bench: replaying {recording.name} ({len(samples) / SAMPLE_RATE:.1f} s) through the pipeline")
        runs.append(pipeline.run(config, path))
    return runs, prepared


def write_results(results: dict, audio_wire_ms: list[float], out: Path, stamp: str) -> str:
    """JSON, Markdown and plots under `out`, named by `stamp`; returns the Markdown."""
    from bench import plots, report

    out.mkdir(parents=True, exist_ok=True)
    results["files"] = {
        "json": str(out / f"{stamp}.json"),
        "markdown": str(out / f"{stamp}.md"),
        "waterfall_png": str(plots.waterfall(results, out / f"{stamp}-waterfall.png")),
        "latency_png": str(plots.latency_histogram(results, audio_wire_ms, out / f"{stamp}-latency.png")),
    }
    summary = report.markdown(results)
    Path(results["files"]["markdown"]).write_text(summary)
    Path(results["files"]["json"]).write_text(report.to_json(results))
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = configure(argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0]))
    args = parser.parse_args(argv)
    try:
        sys.exit(run(args))
    except (ReplayError, configuration.ConfigError, models.ModelError) as error:
        print(f"voxkey bench: {error}", file=sys.stderr)
        sys.exit(1)
