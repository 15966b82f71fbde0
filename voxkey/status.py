"""What a running voxkey is doing, for people: `voxkey status`, the live line `voxkey up`
shows in its terminal, and desktop notifications.

Every stage answers `status` on its control socket with its state, readiness, pid and
its `progress` (the same dict its heartbeats carry): capture whether it listens, the
router the mode and the utterance it heard last, keys its typing backend and what it
typed last. `voxkey status` asks each; `voxkey up` follows the same facts on the bus
as they happen (heartbeats, `transcript`, `typed`), and both render them here.
"""

import time
from dataclasses import dataclass, field

from bus import wiring
from bus.control import StageStatus
from bus.frames import Frame, Heartbeat, Transcript, Typed
from bus.progress import CaptureProgress, KeysProgress, RouterProgress, VadProgress, progress_of
from voxkey.remote import ASK, OUTAGE_BEATS, RemoteStage, remote_stages, why_unheard

SHOWN_TEXT = 60  # characters of heard or typed text a one-line view has room for
RECENT = 10  # utterances whose typed text the live view keeps


def clip(text: str, room: int = SHOWN_TEXT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= room else text[: room - 1] + "…"


def held_line(keys: KeysProgress, now_ns: int) -> str:
    """What keys holds instead of typing late, and what to do about it; "" if nothing."""
    if not keys.held:
        return ""
    ago = max(0, round((now_ns - keys.held_said_ns) / 1e9))
    said = f"said {ago} s ago" if keys.held == 1 else f"the first said {ago} s ago"
    count = f"{keys.held} utterance{'s' if keys.held != 1 else ''}"
    return f"{count} held: {said} -- `voxkey held type` or `voxkey held copy`"


def next_mode_line(router: RouterProgress, now_ns: int) -> str:
    """The mode the next utterance gets (its name said on its own), while it lasts; "" if none."""
    left = (router.next_mode_until_ns - now_ns) / 1e9
    if not router.next_mode or left <= 0:
        return ""
    return f"next utterance: {router.next_mode} (for {max(1, round(left))} s)"


# --- voxkey status ---------------------------------------------------------------------


def render(
    stages: dict[str, StageStatus | str],
    processes: dict[str, dict],
    now_ns: int | None = None,
    remote: dict[str, str] | None = None,
) -> str:
    """`voxkey status` from each stage's answer (or why it gave none) and supervisord's
    view of its process (a stage that answered runs, whatever `processes` lacks), at
    monotonic time `now_ns` (default: now; the stages' times are on the same clock).
    A stage another host runs is shown by its line in `remote` (voxkey/remote.py).
    Pure given `now_ns`."""
    remote = remote or {}
    now_ns = time.monotonic_ns() if now_ns is None else now_ns

    def said(name: str):
        answer = stages.get(name)
        return progress_of(name, answer.progress) if isinstance(answer, StageStatus) else None

    capture = said("capture")
    vad = said("vad") or VadProgress()
    router = said("router") or RouterProgress(mode="?")
    keys = said("keys") or KeysProgress(sink="?")
    lines = [
        f"listening: {listening_word(capture)}" + (f" -- {capture.hotkey}" if capture and capture.hotkey else ""),
        f"speech:    REFUSED -- {vad.refusing}" if vad.refusing else "",
        f"mode:      {router.mode}",
        next_mode_line(router, now_ns),
        f"typing:    {keys.sink}" + (f" ({keys.reason})" if keys.reason else ""),
        held_line(keys, now_ns),
    ]
    lines = [line for line in lines if line]
    if router.heard_utt:
        heard = f'"{clip(router.heard_text)}"' if router.heard_text else "(nothing)"
        why = f" -- dropped: {router.heard_dropped}" if router.heard_dropped else f" ({router.heard_mode})"
        lines.append(f"heard:     {heard}{why}")
    if keys.last_utt:
        latency = f", {keys.last_latency_ms} ms after speech ended" if keys.last_latency_ms >= 0 else ""
        outcome = f"FAILED: {keys.last_error}" if keys.last_error else f'"{clip(keys.last_typed)}"'
        lines.append(f"typed:     {outcome} (by {keys.last_by or '?'}{latency})")
    lines.append("stages:")
    for name in wiring.STAGES:
        if name in remote:
            lines.append(f"  {remote[name]}")
            continue
        answer, process = stages.get(name), processes.get(name, {})
        running = process.get("statename") or ("RUNNING" if isinstance(answer, StageStatus) else "not running")
        if isinstance(answer, StageStatus):
            detail, pid = f"{'ready' if answer.ready else 'not ready'}, {answer.state}", answer.pid
        else:
            detail, pid = answer or "", None
        lines.append(f"  {name:<9} {running:<8} pid {process.get('pid') or pid or '-':<8} {detail}")
    return "\n".join(lines)


def listening_word(capture: CaptureProgress | None) -> str:
    if capture is None:
        return "?"
    if not capture.listening:
        return "off"
    return "on (held)" if capture.held else "on"


# --- voxkey up: the live line and notifications ----------------------------------------


@dataclass
class Event:
    message: str
    desktop: bool = False  # also worth a desktop notification (a mode change, an error)
    urgent: bool = False  # a notification that stays until dismissed (what the user said needs them)


@dataclass
class Loading:
    """Which stages report ready, and what is worth saying as that changes: how loading
    goes, when all are ready, and a stage that stops being ready."""

    ready_message: str = "ready: speak, and it is typed"
    ready: dict = field(default_factory=dict)  # stage -> its pid while it reports ready

    @property
    def all_ready(self) -> bool:
        return set(self.ready) >= set(wiring.STAGES)

    def waiting(self) -> list[str]:
        return [name for name in wiring.STAGES if name not in self.ready]

    def on_heartbeat(self, stage: str, beat: Heartbeat) -> list[Event]:
        was_ready = self.all_ready
        if not beat.ready:
            if self.ready.pop(stage, None):
                return [Event(f"{stage} is not ready (restarting?); what it has not done yet waits for it")]
            return []
        known = stage in self.ready
        # Ready under a new pid: it restarted and was quick about it, so the beats that
        # said it was not ready went out before this follower had reconnected to it
        # (ZeroMQ drops what a subscriber was not connected for). Said all the same.
        restarted = known and self.ready[stage] != beat.pid
        self.ready[stage] = beat.pid
        if restarted:
            again = [Event(self.ready_message)] if self.all_ready else []
            return [Event(f"{stage} restarted (pid {beat.pid})"), *again]
        if self.all_ready and not was_ready:
            return [Event(self.ready_message)]
        if not known and not self.all_ready:
            return [
                Event(
                    f"loading: {len(self.ready)} of {len(wiring.STAGES)} stages ready, "
                    f"waiting for {', '.join(self.waiting())}"
                )
            ]
        return []


@dataclass
class Outages:
    """Stages on another host that go unheard: told once as an outage begins, after
    OUTAGE_BEATS heartbeat periods of silence, and once as the stage is heard again.
    A stage never heard counts from when watching began (`voxkey serve` not started),
    unless `never_heard_is_out` is False (`voxkey serve` waiting for the keyboard's host)."""

    remote: dict[str, RemoteStage] = field(default_factory=dict)
    period_s: float = 5.0
    ask: str = ASK  # what to check, said with an outage
    never_heard_is_out: bool = True
    heard_at: dict = field(default_factory=dict)  # stage -> time.monotonic() it was last heard
    out: dict = field(default_factory=dict)  # stage told gone -> when it was last heard before
    ever_heard: set = field(default_factory=set)

    @classmethod
    def of(cls, config: dict, heard: tuple[str, ...] = wiring.STAGES, **told) -> "Outages":
        """The stages another host runs, of those the watch hears (`heard`)."""
        remote = {stage: where for stage, where in remote_stages(config).items() if stage in heard}
        return cls(remote, float(config["bus"]["heartbeat_s"]), **told)

    def heard(self, stage: str, now: float) -> None:
        if stage in self.remote:
            self.heard_at[stage] = now
            self.ever_heard.add(stage)

    def _why(self, stage: str) -> str:
        """What to check for a stage gone unheard. One never heard while its host's
        other stages are is no network trouble: it is still loading there, or that
        host does not run it."""
        if stage in self.ever_heard or not self.never_heard_is_out:
            return self.ask
        return why_unheard(stage, self.remote, self.ever_heard - set(self.out), self.ask)

    def check(self, now: float) -> list[Event]:
        events = []
        for stage, where in self.remote.items():
            if stage not in self.heard_at and not self.never_heard_is_out:
                continue
            last = self.heard_at.setdefault(stage, now)
            if stage in self.out and last > self.out[stage]:
                events.append(Event(f"{where} heard again, after {last - self.out.pop(stage):.0f} s", desktop=True))
            elif stage not in self.out and now - last > OUTAGE_BEATS * self.period_s:
                self.out[stage] = last
                events.append(Event(f"{where} not heard for {now - last:.0f} s: {self._why(stage)}", desktop=True))
        return events


@dataclass
class Live:
    """What `voxkey up` has seen on the bus, folded from frames as they come. `quote`:
    its events may show what was typed; otherwise they say how much."""

    quote: bool = True
    listening: bool | None = None
    mode: str = ""
    sink: str = ""
    heard: str = ""
    typed: dict = field(default_factory=dict)  # utterance id -> the text typed for it
    last_utt: str = ""
    latency_ms: int | None = None
    error: str = ""
    loading: Loading = field(default_factory=Loading)
    hotkey_problem: str = ""
    refusing: str = ""  # why vad takes no new speech, as it said last
    keys: KeysProgress = field(default_factory=KeysProgress)  # as keys said last (what it holds)
    router: RouterProgress = field(default_factory=RouterProgress)  # as the router said last (the next mode)
    outages: Outages = field(default_factory=Outages)  # none watched unless given the remote stages

    def check_links(self, now: float) -> list[Event]:
        """About once a second, with time.monotonic(): a stage on another host gone
        unheard, or heard again (once each per outage)."""
        return self.outages.check(now)

    def on_frame(self, frame: Frame) -> list[Event]:
        """Fold one frame in; returns what is worth telling the user."""
        body = frame.body
        if isinstance(body, Heartbeat):
            self.outages.heard(frame.src, time.monotonic())
            was_ready = self.loading.all_ready
            events = self.loading.on_heartbeat(frame.src, body) + self._on_heartbeat(frame.src, body.progress)
            if self.loading.all_ready and not was_ready and self.listening is False:
                events.append(Event("not listening: voxkey listen on (or the hotkey) starts"))
            return events
        if isinstance(body, Transcript) and not body.dropped and body.text.strip():
            self.heard = body.text.strip()
        elif isinstance(body, Typed):
            return self._on_typed(frame, body)
        return []

    def _on_heartbeat(self, stage: str, progress: dict) -> list[Event]:
        said = progress_of(stage, progress)
        if isinstance(said, CaptureProgress):
            if said.hotkey and said.hotkey != self.hotkey_problem:
                self.hotkey_problem = said.hotkey
                return [Event(self.hotkey_problem, desktop=True)]
            if said.listening != self.listening:
                self.listening = said.listening
                # Said once everything is loaded: "listening" before then would be untrue.
                return [Event("listening" if self.listening else "not listening")] if self.loading.all_ready else []
        if isinstance(said, VadProgress) and said.refusing != self.refusing:
            self.refusing = said.refusing
            # Urgent: what the user says now is not taken, until downstream catches up.
            return [
                Event(
                    f"speech refused: {said.refusing}" if said.refusing else "speech taken again",
                    desktop=True,
                    urgent=bool(said.refusing),
                )
            ]
        if isinstance(said, RouterProgress):
            return self._on_router(said)
        if isinstance(said, KeysProgress):
            return self._on_keys(said)
        return []

    def _on_router(self, said: RouterProgress) -> list[Event]:
        events = []
        if said.mode and said.mode != self.mode:
            first, self.mode = not self.mode, said.mode
            events.append(Event(f"mode: {self.mode}", desktop=not first))
        news = (said.next_mode, said.next_mode_until_ns) != (self.router.next_mode, self.router.next_mode_until_ns)
        self.router = said
        line = next_mode_line(said, time.monotonic_ns())
        if news and line:
            events.append(Event(line))
        return events

    def _on_keys(self, said: KeysProgress) -> list[Event]:
        events = []
        if said.sink and said.sink != self.sink:
            self.sink = said.sink
            events.append(Event(f"typing with {self.sink}: {said.reason}"))
        more = said.held > self.keys.held
        self.keys = said
        if more:  # the user must hear of it now: what they said is not where they meant it
            events.append(Event(held_line(said, time.monotonic_ns()), desktop=True, urgent=True))
        return events

    def _on_typed(self, frame: Frame, typed: Typed) -> list[Event]:
        if typed.error:
            self.error = typed.error
            return [Event(f"typing failed: {typed.error}", desktop=True)]
        if frame.utt != self.last_utt:
            self.last_utt, self.error = frame.utt, ""
            first_key, speech_end = frame.marks.get("first_key"), frame.marks.get("speech_end")
            self.latency_ms = round((first_key - speech_end) / 1e6) if first_key and speech_end else None
        known = self.typed.get(frame.utt, "")
        text = self.typed[frame.utt] = known + typed.unseen(known)  # a repeated report adds nothing
        for utt in list(self.typed)[:-RECENT]:
            del self.typed[utt]
        if not typed.final or not (text or typed.backspaces):
            return []
        latency = f" {self.latency_ms} ms after speech ended" if self.latency_ms is not None else ""
        erased = f"{typed.backspaces} erased, " if typed.backspaces else ""
        what = f'"{clip(text)}"' if self.quote else f"{len(text)} characters"
        shown = Event(f"typed by {typed.by or frame.src}{latency}: {erased}{what}")
        if typed.in_doubt:  # keys was killed while typing part of it: worth a look
            shown = Event(
                f"{shown.message}; {typed.in_doubt} characters of it may be missing "
                "(keys stopped while typing them): check the text",
                desktop=True,
                urgent=True,
            )
        return [shown]

    def line(self, now_ns: int | None = None) -> str:
        """One line for a terminal: listening, mode, backend, last heard and typed, the
        next utterance's mode and what is held (at monotonic time `now_ns`, default now)."""
        listening = {None: "starting", True: "listening", False: "paused"}[self.listening]
        if not self.loading.all_ready:
            listening = f"loading ({len(self.loading.ready)}/{len(wiring.STAGES)} ready)"
        parts = [listening, self.mode or "?", self.sink or "?"]
        if self.heard:
            parts.append(f'heard "{clip(self.heard, 40)}"')
        if self.last_utt:
            latency = f" in {self.latency_ms / 1000:.1f} s" if self.latency_ms is not None else ""
            parts.append(f"typed {len(self.typed.get(self.last_utt, ''))} chars{latency}")
        if self.error:
            parts.append(f"ERROR {clip(self.error, 50)}")
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        for extra in (next_mode_line(self.router, now_ns), f"{self.keys.held} HELD" if self.keys.held else ""):
            if extra:
                parts.append(extra)
        parts += [f"{stage} UNHEARD" for stage in self.outages.out]
        return "voxkey: " + " | ".join(parts)


def notify(message: str, urgent: bool = False) -> bool:
    """A desktop notification through notify-send, if the session has it. Never waits:
    a notification daemon that hangs must not hold up typing."""
    import shutil  # here: `voxkey status` never notifies, and starts sooner without them
    import subprocess

    tool = shutil.which("notify-send")
    if tool is None:
        return False
    argv = [tool, "--app-name=voxkey", f"--urgency={'critical' if urgent else 'normal'}", "voxkey", message]
    subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return True
