"""voxkey status: what a running voxkey is doing (voxkey/status.py renders it).

    voxkey status [--config FILE] [--set section.key=value ...]
    voxkey status --follow [--json] [--config FILE] [--set section.key=value ...]

Asks every stage `status` on its control socket and supervisord for its process, and
prints listening, mode, typing backend, the last utterance heard and typed, and a line
per stage. A stage that does not answer is shown with why; then the exit status is 1.

`--follow` follows the bus instead and prints a line each time the indicator changes
(voxkey/indicator.py: stopped, loading, listening, hearing, thinking, typing, paused,
error), flushed at once, until interrupted (exit status 0) or the voxkey stops (its
last line says `stopped`; exit status 0, or 1 if none was running to begin with).
With `--json` each line is one JSON object, for a bar (a Waybar `custom` module with
`"return-type": "json"`), with these keys, always all of them:

    state      one of the states above
    listening  true, false, or null while not known
    mode       the sticky mode (dictate, clarify, chat, converse), "" while not known
    sink       the typing backend (wtype, xdotool, ...), "" while not known
    tooltip    one line saying what it does, and the fix when something is wrong
    error      the error shown last, "" when there is none
    held       utterances held instead of being typed late (`voxkey held`)
    text       for Waybar: the state, and the mode while it listens ("listening · dictate")
    class      for Waybar's CSS: the state
    alt        for Waybar's `format-icons`: the state
"""

from bus import sockets
from bus.asking import ControlError, ask
from bus.control import StageStatus
from bus.records import RecordError, typed
from bus.wiring import STAGES
from voxkey import settings, status
from voxkey.running import running_dir


def add_cli(commands):
    report = commands.add_parser(
        "status", help="what a running voxkey is doing: listening, mode, stages, last utterance"
    )
    report.add_argument("--follow", action="store_true", help="print a line each time what it does changes")
    report.add_argument("--json", action="store_true", help="with --follow: one JSON object a line (Waybar)")
    report.set_defaults(run=run)
    return report


def run(args) -> int:
    config = settings.load(args.config, args.set)
    if args.follow:
        return follow(config, as_json=args.json)
    run_dir = running_dir(sockets.run_dir(config))
    answers: dict[str, StageStatus | str] = {}
    for stage in STAGES:
        try:
            answers[stage] = typed(StageStatus, ask(config, stage, "status", {}, timeout_s=1.0))
        except (ControlError, RecordError) as error:
            answers[stage] = str(error).removeprefix(f"{stage}: ")  # why it gave no status
    # A stage that answered runs; supervisord is asked only why one did not (its
    # XML-RPC client is most of what this command would otherwise cost).
    silent = any(not isinstance(answer, StageStatus) for answer in answers.values())
    processes = {}
    if silent:
        from voxkey.supervise import Supervisor

        processes = Supervisor(run_dir, run_dir / "run.toml").states()
    print(status.render(answers, processes))
    return 0 if all(isinstance(answer, StageStatus) for answer in answers.values()) else 1


def follow(config: dict, as_json: bool) -> int:
    """`--follow`: a line per change of the indicator, until the voxkey stops."""
    import json
    import sys

    from voxkey import indicator
    from voxkey.tray.sound import Cues, cue_of

    cues = Cues() if config["cli"]["sound_cues"] else None
    was_running = False
    listening = None
    try:
        for shown in indicator.follow(config):
            if cues is not None:
                cues.play(cue_of(listening, shown.listening))
            listening = shown.listening
            print(json.dumps(shown.as_json(), ensure_ascii=False) if as_json else shown.line(), flush=True)
            if shown.state == "stopped":
                return 0 if was_running else 1
            was_running = True
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # the bar that read us went away
        sys.stdout = None  # nothing more to flush at exit
        return 0
    return 0
