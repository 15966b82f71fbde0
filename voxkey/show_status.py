"""voxkey status: what a running voxkey is doing (voxkey/status.py renders it).

    voxkey status [--config FILE] [--set section.key=value ...]

Asks every stage `status` on its control socket and supervisord for its process, and
prints listening, mode, typing backend, the last utterance heard and typed, and a line
per stage. A stage that does not answer is shown with why; then the exit status is 1.
"""

from bus import sockets
from bus.control import ControlError, StageStatus, ask
from bus.records import RecordError, typed
from bus.wiring import STAGES
from voxkey import settings, status
from voxkey.running import running_dir


def add_cli(commands):
    report = commands.add_parser(
        "status", help="what a running voxkey is doing: listening, mode, stages, last utterance"
    )
    report.set_defaults(run=run)
    return report


def run(args) -> int:
    from voxkey.supervise import Supervisor  # only here: `voxkey --help` and `voxkey listen` do without it

    config = settings.load(args.config, args.set)
    run_dir = running_dir(sockets.run_dir(config))
    answers: dict[str, StageStatus | str] = {}
    for stage in STAGES:
        try:
            answers[stage] = typed(StageStatus, ask(config, stage, "status", {}, timeout_s=1.0))
        except (ControlError, RecordError) as error:
            answers[stage] = str(error).removeprefix(f"{stage}: ")  # why it gave no status
    processes = Supervisor(run_dir, run_dir / "run.toml").states()
    print(status.render(answers, processes))
    return 0 if all(isinstance(answer, StageStatus) for answer in answers.values()) else 1
