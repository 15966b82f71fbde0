"""`voxkey bench --languages`: how well each Whisper model hears German, French, Spanish
and English, with the language given and with language = "auto".

    python -m bench.languages [--out DIR] [--split held|tune|all]

Speech: tests/audio/languages (bench.languageset: espeak-ng, robotic, so a person is
misheard less), of the split asked for, and the English dictation and command fixtures
of tests/audio (synthesised by Piper, and jfk.flac, a person), in every split. Each clip
is cut as the vad stage cuts it (raw.utterances) and each utterance recognised as a
final is: the asr stage's own decoding call and guards, and for "auto" its own choice
of language (Asr._language_for, stages/asr/language.py), borrowed, not copied. "auto"
hears each voice's clips in manifest order with a language state of its own, as one
speaker's session: the first utterance sets the language, which then sticks unless an
utterance is long and sure enough to move it. Models: the multilingual built-in `base`,
`whisper-small` where `voxkey models fetch` installed it, and tiny.en (English only).

Per language, model and setting: word error rate (bus.text.words: case and punctuation
aside; accents count), the median time to recognise a clip, the real-time factor (all
recognition time over all the audio recognised), clips "auto" put in a wrong language,
and per kind how many commands, prefixes and switches were heard as said (case,
punctuation and accents aside) and how many the router's own rule (stages/router/
meaning.py, with the tables of the language heard) routed as meant: what the user
feels. Without vad's voicing at the word timings here, a name stands apart by the
punctuation Whisper wrote after it. Dictation routed as meant stays dictation whole.
Writes languages.json and languages.md in the output folder (default bench/results).
"""

import argparse
import json
import os
import sys
import time
import unicodedata
from pathlib import Path

import numpy as np

from bench import languageset, raw
from bench.procs import foreign_load, machine_reading
from bench.report import table, to_json
from bench.stats import percentile
from bench.workload import word_errors
from bus import config as configuration
from bus import models
from bus.frames import SAMPLE_RATE
from bus.stage import StageError
from bus.text import words
from stages.asr import stage as asr_stage
from stages.asr.language import AUTO, LanguageRule
from stages.capture import audio
from stages.router.language import command_of, hearing
from stages.router.meaning import decide

BENCH = Path(__file__).resolve().parent
AUDIO = BENCH.parent / "tests" / "audio"
RESULTS = BENCH / "results"
SPLITS = ("held", "tune", "all")
LANGUAGES = ("de", "fr", "es", "en")
KINDS = ("command", "prefix", "switch")  # the kinds the router acts on, so heard whole or not at all
ROUTED = ("dictation", *KINDS)
# label -> (model name, the settings it is heard with: the clip's own language, or "auto")
MODELS = {
    "base": ("base", ("given", AUTO)),
    "small": ("whisper-small", ("given", AUTO)),
    "tiny.en": ("tiny.en", ("given",)),
}
ENGLISH_ONLY = {"tiny.en"}
# The English fixtures said as one dictated sentence each; commands are the cmd_ ones.
# dictate_report_48k_stereo.wav is left out: the same speech as dictate_report.wav.
ENGLISH_DICTATION = ("jfk.flac", "dictate_report.wav", "dictate_meeting.wav")


def language_clips(directory: Path, split: str) -> list[dict]:
    """The language set's clips of `split`, in manifest order."""
    manifest = json.loads((directory / "MANIFEST.json").read_text())
    return [
        {**entry, "path": directory / entry["file"]}
        for entry in manifest["clips"]
        if split == "all" or entry["split"] == split
    ]


# What the router does with each English command fixture ("stop": a stop word).
ENGLISH_COMMANDS = {"cmd_new_line.wav": "new line", "cmd_scratch_that.wav": "scratch that", "cmd_cancel.wav": "stop"}


def english_kind(name: str) -> str:
    if name in ENGLISH_COMMANDS:
        return "command"
    return "dictation" if name in ENGLISH_DICTATION else ""


def english_clips(audio_dir: Path) -> list[dict]:
    """The English fixtures with one known sentence and a kind, as the language set's clips."""
    files = json.loads((audio_dir / "MANIFEST.json").read_text())["files"]
    return [
        {
            "file": name,
            "language": "en",
            "text": entry["text"],
            "kind": english_kind(name),
            "expect": ENGLISH_COMMANDS.get(name, ""),
            "voice": "person" if name == "jfk.flac" else "piper en_US-joe-medium",
            "split": "all",
            "path": audio_dir / name,
        }
        for name, entry in files.items()
        if english_kind(name) and isinstance(entry["text"], str)
    ]


def by_voice(clips: list[dict]) -> dict[str, list[dict]]:
    """Clips grouped by voice, each group in the order given."""
    groups: dict[str, list[dict]] = {}
    for clip in clips:
        groups.setdefault(clip["voice"], []).append(clip)
    return groups


def unaccented(text: str) -> list[str]:
    """Words without case, punctuation or accents ("¿Cuál es?" -> ["cual", "es"])."""
    decomposed = unicodedata.normalize("NFKD", text)
    return words("".join(c for c in decomposed if not unicodedata.combining(c)))


def missing(name: str) -> str:
    """Why model `name` cannot be measured ("" if it can)."""
    try:
        asr_stage.resolve_model(name)
    except StageError as error:
        return str(error) if name in models.BUILT_IN else f"not installed: voxkey models fetch {name}"
    return ""


class Listener:
    """The asr stage's language handling for one speaker, with the stage's own methods
    (they need only what is set here), so what is measured is what runs."""

    _check_language = asr_stage.Asr._check_language
    _language_for = asr_stage.Asr._language_for
    _spoken = asr_stage.Asr._spoken
    _transcribe = asr_stage.Asr._transcribe

    def __init__(self, whisper: raw.Whisper, language: str):
        self.model = whisper.model
        self.settings = {**whisper.settings, "language": language}
        self.guards = asr_stage.Guards.of(self.settings)
        self.hypotheses = None  # no partials: each utterance is recognised once, as a final
        self._check_language()

    def load_state(self, kind):
        return kind()  # a new speaker: no language kept from before

    def hear(self, samples: np.ndarray, voiced_ms: int | None) -> dict:
        """One utterance as a final: its text, language and recognition seconds."""
        floats = samples.astype(np.float32) / 32768.0
        started = time.perf_counter()
        language, encoded = self._language_for(None, floats)
        segments = self._transcribe(floats, timed=True, language=language, encoded=encoded)
        seconds = time.perf_counter() - started
        text, dropped = asr_stage.judge(segments, self.guards, voiced_ms)
        if self.auto and not dropped and language != self.language:
            self.language = language  # as the stage's handle(): a transcript kept moves it
        return {"text": text, "dropped": dropped, "language": language, "seconds": seconds, "fell_back": self.fell_back}


def routed(text: str, language: str) -> str:
    """What the router makes of an utterance: the command it is, the mode it names for
    itself or the next one, the mode it switches to, or "" (dictation, typed whole)."""
    languages = hearing(language)
    command = command_of(text, languages)
    if command:
        return command
    decision = decide(text, "clarify", {}, set(), languages=languages)  # a switch to dictate shows
    if decision.stop:
        return "stop"
    if decision.sticky or decision.next:
        return decision.sticky or decision.next
    return decision.mode if decision.mode != "clarify" else ""


def judged(clip: dict, heard: list[dict], audio_s: float) -> dict:
    """One clip's row: what was typed for its utterances against what was said."""
    typed = " ".join(h["text"] for h in heard if h["text"]).strip()
    languages = [h["language"] for h in heard]
    return {
        "file": clip["file"],
        "language": clip["language"],
        "kind": clip["kind"],
        "voice": clip["voice"],
        "said": clip["text"],
        "typed": typed,
        "heard_in": languages,
        "wrong_language": any(code != clip["language"] for code in languages),
        "fell_back": [h["fell_back"] for h in heard if h["fell_back"]],
        "word_errors": word_errors(words(clip["text"]), words(typed)),
        "words": len(words(clip["text"])),
        "as_said": unaccented(typed) == unaccented(clip["text"]),
        "routed": (made := routed(typed, languages[0] if languages else clip["language"])),
        "routed_as_meant": made == clip["expect"],
        "audio_s": round(audio_s, 2),
        "seconds": round(sum(h["seconds"] for h in heard), 3),
    }


def run_arm(whisper: raw.Whisper, setting: str, cut: dict[str, list[dict]]) -> list[dict]:
    """Every clip heard with `setting`: "auto" keeps one language state per voice."""
    rows = []
    for clips in cut.values():
        speaker = Listener(whisper, AUTO) if setting == AUTO else None
        for clip in clips:
            listener = speaker or Listener(whisper, clip["language"])
            heard = [listener.hear(samples, voiced) for samples, voiced in clip["utterances"]]
            audio_s = sum(len(samples) for samples, _ in clip["utterances"]) / SAMPLE_RATE
            rows.append(judged(clip, heard, audio_s))
    return rows


def summary(rows: list[dict], auto: bool) -> dict:
    """The figures of one language, model and setting."""
    errors, said = sum(r["word_errors"] for r in rows), sum(r["words"] for r in rows)
    audio_s, seconds = sum(r["audio_s"] for r in rows), sum(r["seconds"] for r in rows)
    return {
        "clips": len(rows),
        "word_errors": errors,
        "words": said,
        "wer": round(errors / said, 3) if said else None,
        "median_s": round(percentile([r["seconds"] for r in rows], 50), 3),
        "rtf": round(seconds / audio_s, 3) if audio_s else None,
        "wrong_language": sum(r["wrong_language"] for r in rows) if auto else None,
        "fell_back": sum(bool(r["fell_back"]) for r in rows),
        "heard": {
            kind: [sum(r["as_said"] for r in rows if r["kind"] == kind), sum(r["kind"] == kind for r in rows)]
            for kind in KINDS
        },
        "routed": {
            kind: [sum(r["routed_as_meant"] for r in rows if r["kind"] == kind), sum(r["kind"] == kind for r in rows)]
            for kind in ROUTED
        },
    }


def cut_clips(clips: list[dict], vad: dict) -> dict[str, list[dict]]:
    """Per voice, its clips with the utterances vad would send (audio, voiced ms)."""
    return by_voice(
        [
            {**clip, "utterances": [(u.audio, u.voiced_ms) for u in raw.utterances(audio.read_all(clip["path"]), vad)]}
            for clip in clips
        ]
    )


def measure_model(config: dict, label: str, cut: dict[str, list[dict]], say) -> dict:
    """One model: per setting, a summary per language and a row per clip."""
    name, settings = MODELS[label]
    why = missing(name)
    if why:
        say(f"languages: {label}: {why}")
        return {"label": label, "model": name, "missing": why}
    whisper = raw.Whisper({**config["stages"]["asr"], "model": name})
    if label in ENGLISH_ONLY:
        cut = {voice: [c for c in clips if c["language"] == "en"] for voice, clips in cut.items()}
        cut = {voice: clips for voice, clips in cut.items() if clips}
    result = {"label": label, "model": name, "threads": whisper.threads, "settings": {}}
    for setting in settings:
        say(f"languages: {label}, language {setting}")
        rows = run_arm(whisper, setting, cut)
        of = {code: [r for r in rows if r["language"] == code] for code in LANGUAGES}
        summaries = {code: summary(found, setting == AUTO) for code, found in of.items() if found}
        result["settings"][setting] = {"languages": summaries, "rows": rows}
    return result


def cpu_model() -> str:
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def rule_settings(config: dict) -> dict:
    """What "auto" was measured with, and the decoding every arm shares."""
    settings = config["stages"]["asr"]
    rule = LanguageRule.of(settings)
    return {
        "languages": list(rule.languages),
        "language_switch_s": rule.switch_s,
        "language_switch_probability": rule.switch_probability,
        "language_switch_ratio": rule.switch_ratio,
        **{key: settings[key] for key in ("beam_size", "compute_type", "encode")},
    }


def measure(config: dict, audio_dir: Path, out_dir: Path, say, split: str = "held") -> dict:
    """Every model on the split's clips; written as languages.json and languages.md in `out_dir`."""
    started, before, load_before = time.perf_counter(), machine_reading(), os.getloadavg()[0]
    clips = language_clips(languageset.OUT, split) + english_clips(audio_dir)
    say(f"languages: {len(clips)} clips ({split} split and the English fixtures)")
    cut = cut_clips(clips, config["stages"]["vad"])
    results = {
        "split": split,
        "settings": rule_settings(config),
        "cpu_model": cpu_model(),
        "cpus": len(os.sched_getaffinity(0)),
        "models": [measure_model(config, label, cut, say) for label in MODELS],
    }
    results["loadavg_before"], results["loadavg_after"] = round(load_before, 2), round(os.getloadavg()[0], 2)
    results["load"] = foreign_load(before, machine_reading(), os.cpu_count() or 1)
    results["seconds"] = round(time.perf_counter() - started, 1)
    return written(results, Path(out_dir))


def written(results: dict, out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = out_dir / "languages.json", out_dir / "languages.md"
    results = {**results, "files": [str(path) for path in paths]}
    paths[0].write_text(to_json(results) + "\n")
    paths[1].write_text(markdown(results) + "\n")
    return results


def fraction(counted: list[int], what: str = "heard") -> str:
    return f"{what} {counted[0]}/{counted[1]}" if counted[1] else "–"


def summary_rows(results: dict) -> list[list]:
    rows = []
    for code in LANGUAGES:
        for model in results["models"]:
            if "missing" in model:
                rows.append([code, model["label"], model["missing"], *["–"] * 14])
                continue
            for setting, arm in model["settings"].items():
                s = arm["languages"].get(code)
                if s is None:
                    continue
                cells = [f"{s['word_errors']}/{s['words']}", s["wer"], s["median_s"], s["rtf"], s["fell_back"]]
                cells.append(s["wrong_language"])
                heard = [fraction(s["heard"][kind]) for kind in KINDS]
                went = [fraction(s["routed"][kind], "routed") for kind in ROUTED]
                rows.append([code, model["label"], setting, s["clips"], *cells, *heard, *went])
    return rows


def wrong_languages(results: dict) -> list[list]:
    """The clips "auto" heard in a language nobody spoke, and what it typed."""
    return [
        [model["label"], row["file"], " ".join(row["heard_in"]), row["typed"].replace("|", "\\|")]
        for model in results["models"]
        for row in model.get("settings", {}).get(AUTO, {}).get("rows", [])
        if row["wrong_language"]
    ]


def markdown(results: dict) -> str:
    load, settings = results["load"], results["settings"]
    threads = ", ".join(f"{m['label']} {m['threads']}" for m in results["models"] if "threads" in m)
    lines = [
        "# Languages: what each Whisper model hears, the language given and auto",
        "",
        f"Split `{results['split']}` of tests/audio/languages (espeak-ng) and the English fixtures. "
        f"{results['cpu_model']}, {results['cpus']} cores, threads {threads}; 1-minute load average "
        f"{results['loadavg_before']} before, {results['loadavg_after']} after; other processes took "
        f"{load['other_processes_share']:.0%} of the CPUs meanwhile (stolen {load['stolen_share']:.0%}), "
        "which inflates the times.",
        "",
        f'"auto": candidates {settings["languages"] or "every language"}, switching after '
        f"{settings['language_switch_s']} s at probability {settings['language_switch_probability']} and "
        f"{settings['language_switch_ratio']}× the language in use; one language state per voice, clips in "
        f"manifest order. Beam {settings['beam_size']}, {settings['compute_type']}, encode {settings['encode']}.",
        "",
    ]
    header = ["language", "model", "language set", "clips", "word errors", "WER", "median s", "RTF", "fell back"]
    header += ["wrong language", *KINDS, *(f"{kind} routed" for kind in ROUTED)]
    lines += table(header, summary_rows(results))
    lines += [
        'WER counts accents and spelt-out numbers ("zehn" typed as 10 is an error); median s: one clip\'s '
        "recognition, language choice included; RTF: recognition time over the audio recognised; fell back: "
        "clips whose short encoding looked wrong and were recognised again in the 30 s window (the slow "
        "ones); heard: typed as said, case, punctuation and accents aside; routed: what the router's rule made of "
        "what was typed was what was meant (dictation: typed whole, no command or mode taken from it).",
        "",
    ]
    wrong = wrong_languages(results)
    if wrong:
        lines += ['## Clips "auto" heard in a wrong language', ""]
        lines += table(["model", "clip", "heard in", "typed"], wrong)
    lines += [f"Took {results['seconds']} s; results in {', '.join(results.get('files', []))}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.languages", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(RESULTS), help="where languages.json and .md go")
    parser.add_argument("--split", choices=SPLITS, default="held", help="of tests/audio/languages (default: held)")
    args = parser.parse_args(argv)
    results = measure(
        configuration.load(), AUDIO, Path(args.out), lambda m: print(m, file=sys.stderr, flush=True), args.split
    )
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
