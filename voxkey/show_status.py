"""voxkey status: what a running voxkey is doing (voxkey/status.py renders it).

    voxkey status [--config FILE] [--set section.key=value ...]
    voxkey status --follow [--json] [--config FILE] [--set section.key=value ...]

Asks every stage `status` on its control socket, all at once, and prints listening,
mode, typing backend, the last utterance heard and typed, and a line per stage. A stage
that does not answer is shown with why, and supervisord's view of its process; then
the exit status is 1. A stage another host runs is shown as the stages here that listen
to it hear it (voxkey/remote.py): whether it is ready, when it was heard last, and the
round trip to it; one not heard for a while makes the exit status 1 too.

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

from bus import config as configuration
from bus import sockets
from bus.asking import ControlError, ask_each
from bus.control import StageStatus
from bus.records import RecordError, typed
from bus.wiring import STAGES
from voxkey import remote, status
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
    config = configuration.load(args.config, args.set, user=configuration.user_file())  # as voxkey/running.py
    if args.follow:
        return follow(config, as_json=args.json)
    run_dir = running_dir(sockets.run_dir(config))
    config = remote.as_running(config, run_dir)
    away = remote.remote_stages(config)  # their control sockets are on their host
    asked = ask_each(config, [stage for stage in STAGES if stage not in away], "status", {}, timeout_s=1.0)
    answers = {stage: status_of(stage, said) for stage, said in asked.items()}
    links = remote.reports(away, answers, float(config["bus"]["heartbeat_s"]))
    # A stage that answered runs; supervisord is asked only why one did not (its
    # XML-RPC client is most of what this command would otherwise cost).
    silent = any(not isinstance(answer, StageStatus) for answer in answers.values())
    processes = {}
    if silent:
        from voxkey.supervise import Supervisor

        processes = Supervisor(run_dir, run_dir / "run.toml").states()
    print(status.render(answers, processes, remote={stage: report.line for stage, report in links.items()}))
    heard = all(report.verdict != "FAIL" for report in links.values())
    return 0 if heard and all(isinstance(answer, StageStatus) for answer in answers.values()) else 1


def status_of(stage: str, said) -> StageStatus | str:
    """A stage's StageStatus, or why it gave none."""
    if isinstance(said, ControlError):
        return str(said).removeprefix(f"{stage}: ")
    try:
        return typed(StageStatus, said)
    except RecordError as error:
        return f"not a status: {error}"


def follow(config: dict, as_json: bool) -> int:
    """`--follow`: a line per change of the indicator, until the voxkey stops."""
    import json
    import sys

    from voxkey import indicator
    from voxkey.cues import Cues, cue_of

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
