"""Typing speed of each backend into a real app, as `voxkey bench --typing` (alone:
`python -m bench.typing_speed`).

For each backend that can run here -- xdotool and the clipboard into xterm under Xvfb;
the wayland sink, wtype and the clipboard into foot under a headless sway -- each text
is typed several times with the sink's real class, and timed from the call to the
moment the app's shell received the whole text (its last Return). Every run is read
back and compared with what was typed: a difference is counted as an error, never
hidden, and a run that lost only its first key is counted apart. Reports the median
characters per second and the median time to the whole text, per backend, text and key
delay, and writes bench/results/<timestamp>-typing.json and .md.

Under sway a German keyboard stays open while the Wayland backends type, as a desk's
keyboard would. Two more rows open a new wayland keyboard for every run: with that desk
keyboard, and on a "cold seat" (none: each new keyboard makes the app bind its keyboard
anew, which is when keys are lost).
"""

import argparse
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import report, sessions
from bench.sessions import XTERM_PASTES_ON_CTRL_V, Xterm, headless_sway, x_server
from stages.keys.clipboard import ClipboardSink
from stages.keys.sinks import SinkError
from stages.keys.virtual_keyboard import VirtualKeyboard
from stages.keys.wayland import WaylandSink
from stages.keys.wtype import WtypeSink
from stages.keys.xdotool import XdotoolSink

RESULTS = Path(__file__).resolve().parent / "results"
TEXTS = {
    "ascii sentence": "Please send the quarterly report to Maria before Friday afternoon, and copy the whole team "
    "on it so that nobody has to ask again; the numbers are final, the charts are not yet done.",
    "unicode": "Café crème, naïve façade, Zoë’s résumé: ✓ done — 3 × 4 = 12 °C, ß and €.",
    "three lines": "First line of a note.\nSecond line, with a list: one, two.\nThird line ends it.",
    # A chat answer's length, one line (a tty line holds 4095 bytes).
    "long answer": " ".join(
        ["Tea is best brewed with water just off the boil, for three to five minutes, then strained."] * 11
    ),
}
FIRST_KEY_TEXT = "Fresh keyboard, first key."
DELAYS_MS = (4, 1)  # the default key delay, and nearly none


def received_after(out: Path, before: int, lines: int) -> str:
    """What the app's shell wrote past `before`, once it holds `lines` lines ("" until then)."""
    new = out.read_bytes()[before:]
    return new.decode("utf-8", "replace") if new.count(b"\n") >= lines else ""


def time_one(sink, out: Path, text: str) -> tuple[float, bool, bool]:
    """Seconds from the call until the app has the whole text, whether it is exact, and
    whether all but its first key arrived."""
    before = len(out.read_bytes())
    started = time.monotonic()
    sink.type(0, text + "\n")
    # Looked at every millisecond: the fastest backends take a few.
    got = sessions.wait_until(
        lambda: received_after(out, before, text.count("\n") + 1), 60, "the app received the text", every_s=0.001
    )
    return time.monotonic() - started, got == text + "\n", got == text[1:] + "\n"


class NewKeyboardEachCall:
    """The wayland sink as a tool-per-call would be: a keyboard opened for each text."""

    def __init__(self, env):
        self.env = env

    def type(self, backspaces: int, text: str) -> None:
        sink = WaylandSink(env=self.env)
        try:
            sink.type(backspaces, text)
        finally:
            sink.close()


@contextlib.contextmanager
def desk_keyboard(env, layout: str = "de"):
    """Another virtual keyboard with a real layout, open until the block ends: the
    user's own keyboard, on a headless compositor that has none."""
    from xkbcommon import xkb

    keyboard = VirtualKeyboard(env["WAYLAND_DISPLAY"], timeout_s=10)
    try:
        keyboard.upload_keymap(xkb.Context().keymap_new_from_names(layout=layout).get_as_string())
        yield keyboard
    finally:
        keyboard.close()


def measure(backend: str, make_sink, out: Path, repeats: int, say, delays=DELAYS_MS, texts=TEXTS) -> list[dict]:
    rows = []
    for delay in delays:
        sink = make_sink(delay)
        for name, text in texts.items():
            seconds, errors, first_lost = [], 0, 0
            for _ in range(repeats):
                try:
                    took, exact, only_first_lost = time_one(sink, out, text)
                except (SinkError, sessions.SessionError) as failure:
                    say(f"bench: {backend} failed: {failure}")
                    errors += 1
                    continue
                seconds.append(took)
                errors += not exact
                first_lost += only_first_lost
            median = statistics.median(seconds) if seconds else None
            rows.append(
                {
                    "backend": backend,
                    "text": name,
                    "key_delay_ms": delay,
                    "characters": len(text),
                    "runs": repeats,
                    "errors": errors,
                    "first_key_lost": first_lost,
                    "median_s": median,
                    "chars_per_s": len(text) / median if median else None,
                }
            )
            say(
                f"bench: {backend} delay {delay} ms, {name}: "
                f"{rows[-1]['chars_per_s'] or 0:.0f} chars/s, {errors} error(s), first key lost {first_lost}"
            )
        if hasattr(sink, "close"):  # a keyboard held open
            sink.close()
    return rows


def run_all(repeats: int, say) -> list[dict]:
    rows = []
    work = Path(tempfile.mkdtemp(prefix="voxkey-typing-"))
    with x_server() as display:
        xterm = Xterm(display, work / "xterm.txt")
        try:
            rows += measure(
                "xdotool (X11, xterm)", lambda delay: XdotoolSink(delay, env=xterm.env), xterm.out, repeats, say
            )
        finally:
            xterm.close()
        xterm = Xterm(display, work / "xterm-paste.txt", *XTERM_PASTES_ON_CTRL_V)
        try:
            rows += measure(
                "clipboard (X11, xterm)",
                lambda delay: ClipboardSink("ctrl+v", session="x11", delay_ms=delay, env=xterm.env),
                xterm.out,
                repeats,
                say,
            )
        finally:
            xterm.close()
    with headless_sway() as foot:
        rows += first_keys("wayland, new keyboard each run (cold seat)", foot, repeats, say)
        with desk_keyboard(foot.env):
            rows += wayland_rows(foot, repeats, say)
    return rows


def first_keys(backend: str, foot, repeats: int, say) -> list[dict]:
    """Whether a new keyboard's first key arrives, over at least 20 keyboards."""
    new = lambda _: NewKeyboardEachCall(foot.env)  # noqa: E731
    return measure(backend, new, foot.out, max(repeats, 20), say, (0,), {"first key": FIRST_KEY_TEXT})


def wayland_rows(foot, repeats: int, say) -> list[dict]:
    """Every Wayland backend into foot, beside a desk keyboard."""
    rows = measure("wayland (held open, foot)", lambda _: WaylandSink(env=foot.env), foot.out, repeats, say, (0,))
    rows += first_keys("wayland, new keyboard each run", foot, repeats, say)
    rows += measure("wtype (Wayland, foot)", lambda delay: WtypeSink(delay, env=foot.env), foot.out, repeats, say)
    rows += measure(
        "clipboard (Wayland, foot)",
        lambda delay: ClipboardSink("ctrl+shift+v", session="wayland", delay_ms=delay, env=foot.env),
        foot.out,
        repeats,
        say,
    )
    return rows


def markdown(results: dict) -> str:
    rows = [
        [
            r["backend"],
            r["text"],
            r["key_delay_ms"],
            r["characters"],
            None if r["median_s"] is None else f"{r['median_s'] * 1000:.0f}",
            None if r["chars_per_s"] is None else f"{r['chars_per_s']:.0f}",
            f"{r['errors']}/{r['runs']}",
            f"{r.get('first_key_lost', 0)}/{r['runs']}",
        ]
        for r in results["rows"]
    ]
    notes = [
        f"Medians of {results['repeats']} runs each, measured in one run on {results['host']}; from the sink's call "
        "to the app's shell holding the whole text (its last Return). Errors: runs whose text was not received "
        "exactly; first key lost: those that lacked only their first key. Wayland rows beside a desk keyboard "
        "but the cold seat's."
    ]
    return "\n".join(
        report.section(
            "Typing speed per backend",
            ["backend", "text", "key delay ms", "chars", "median ms", "chars/s", "errors", "first key lost"],
            rows,
            notes,
            level=1,
        )
    )


def run(repeats: int = 3, out: Path = RESULTS, say=print) -> dict:
    missing = sessions.missing_tools("Xvfb", "xterm", "xdotool", "xclip", "sway", "foot", "wtype", "wl-copy")
    if missing:
        raise sessions.SessionError(f"{', '.join(missing)} not installed: run ./install")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = {
        "schema": report.SCHEMA,
        "timestamp": stamp,
        "host": f"{platform.machine()}, {os.cpu_count()} cores",
        "repeats": repeats,
        "rows": run_all(repeats, say),
    }
    out.mkdir(parents=True, exist_ok=True)
    results["files"] = {"json": str(out / f"{stamp}-typing.json"), "markdown": str(out / f"{stamp}-typing.md")}
    summary = markdown(results)
    Path(results["files"]["markdown"]).write_text(summary)
    Path(results["files"]["json"]).write_text(report.to_json(results))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.typing_speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    sys.exit(
        sessions.run_on_sessions(lambda say: run(args.repeats, Path(args.out), say), markdown, sessions.say_on_stderr)
    )


if __name__ == "__main__":
    main()
