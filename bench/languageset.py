"""Make tests/audio/languages: dictation, spoken commands, mode prefixes and switches in
German, French and Spanish.

    python -m bench.languageset [--out DIR]

Spoken by espeak-ng (`apt-get install espeak-ng`; only to make the set again), the only offline
voices for these languages packaged here. Its speech is robotic, and Whisper mishears
it more than a person (`voxkey bench --languages` measures how much). Every text is
spoken by three voice variants at two speeds. The split is by voice: `tune` (one
variant, for choosing values and for the tests) and `held` (the other two, kept apart
for the bench). 16 kHz mono FLAC, with MANIFEST.json naming each clip's language, text,
kind (dictation, command, prefix, switch), what voxkey should make of it (`expect`: the
command, or the mode), voice, speed and split. espeak-ng is deterministic: the same
version makes the same files.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench.modeset import padded, resample, write_flac

OUT = Path(__file__).resolve().parent.parent / "tests" / "audio" / "languages"
VOICES = {"+m1": "tune", "+f2": "held", "+m3": "held"}  # espeak-ng variants
SPEEDS = (130, 160)  # words a minute
ESPEAK_RATE = 22_050

# language -> (kind, text, expect). `expect`: for a command, what it does; for a prefix
# or a switch, the mode it names; "" for dictation.
TEXTS = {
    "de": [
        ("dictation", "Bitte schicke den Bericht bis Freitag an Maria.", ""),
        ("dictation", "Wir treffen uns morgen um zehn Uhr im Büro.", ""),
        ("dictation", "Das Wetter in Berlin ist heute sehr schön.", ""),
        ("dictation", "Ich habe die Rechnung gestern bezahlt.", ""),
        ("command", "Neue Zeile.", "new line"),
        ("command", "Neuer Absatz.", "new paragraph"),
        ("command", "Lösch das.", "scratch that"),
        ("prefix", "Chat. Was ist die Hauptstadt von Frankreich?", "chat"),
        ("prefix", "Gespräch. Wie viel ist siebzehn mal drei?", "converse"),
        ("switch", "Wechsle zum Diktat.", "dictate"),
    ],
    "fr": [
        ("dictation", "Je vais envoyer le rapport à Marie avant vendredi.", ""),
        ("dictation", "Nous avons une réunion demain matin à dix heures.", ""),
        ("dictation", "Le café est fermé le dimanche.", ""),
        ("dictation", "Merci beaucoup pour votre message.", ""),
        ("command", "Nouvelle ligne.", "new line"),
        ("command", "Nouveau paragraphe.", "new paragraph"),
        ("command", "Efface ça.", "scratch that"),
        ("prefix", "Discussion. Quelle est la capitale de l'Espagne ?", "chat"),
        ("prefix", "Conversation. Combien font douze fois trois ?", "converse"),
        ("switch", "Passe en mode dictée.", "dictate"),
    ],
    "es": [
        ("dictation", "Voy a enviar el informe a María antes del viernes.", ""),
        ("dictation", "Mañana tenemos una reunión a las diez.", ""),
        ("dictation", "El tren llega a Madrid por la tarde.", ""),
        ("dictation", "Gracias por tu mensaje de ayer.", ""),
        ("command", "Nueva línea.", "new line"),
        ("command", "Nuevo párrafo.", "new paragraph"),
        ("command", "Borra eso.", "scratch that"),
        ("prefix", "Chat. ¿Cuál es la capital de Francia?", "chat"),
        ("prefix", "Conversación. ¿Cuánto es doce por tres?", "converse"),
        ("switch", "Cambia al modo dictado.", "dictate"),
    ],
}


def speak(language: str, variant: str, speed: int, text: str) -> np.ndarray:
    """espeak-ng's speech of `text` as float samples at 16 kHz, with silence around it."""
    wav = subprocess.run(
        ["espeak-ng", "-v", language + variant, "-s", str(speed), "--stdout", text],
        capture_output=True,
        check=True,
    ).stdout
    pcm = np.frombuffer(wav[44:], "<i2").astype(np.float32) / 32768.0  # after the RIFF header
    return padded(resample(pcm, ESPEAK_RATE))


def clips() -> list[dict]:
    """Every clip the set holds, in a fixed order."""
    found = []
    for language, texts in TEXTS.items():
        for number, (kind, text, expect) in enumerate(texts):
            for variant, split in VOICES.items():
                for speed in SPEEDS:
                    name = f"{language}-{number:02d}-{kind}-{variant.strip('+')}-{speed}.flac"
                    found.append(
                        {
                            "file": name,
                            "language": language,
                            "text": text,
                            "kind": kind,
                            "expect": expect,
                            "voice": f"espeak-ng {language}{variant}",
                            "speed": speed,
                            "split": split,
                        }
                    )
    return found


def generate(out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    entries = clips()
    for entry in entries:
        language, variant = entry["voice"].split()[1][:2], entry["voice"].split()[1][2:]
        write_flac(out / entry["file"], speak(language, variant, entry["speed"], entry["text"]))
    manifest = {"_about": __doc__.strip().splitlines()[0], "clips": entries}
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.languageset", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    manifest = generate(args.out)
    print(f"{len(manifest['clips'])} clips in {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
