"""`voxkey doctor`: checks what voxkey needs on this machine, one line each with a
verdict, and for every problem the fix. Exits 1 when a part voxkey cannot run without
is missing (a microphone, a model, room in memory, supervisord, a private run
directory); a warning never fails it.

The judging is pure (levels, memory budgets); the checks around it only gather facts.
"""

import math
import os
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bus import sockets, wiring
from voxkey import heat, models, remote, settings

MB = 1024 * 1024
STAGE_RUNTIME_MB = 70  # a stage process before its model: Python, numpy, zmq (measured: 55-75 MB RSS)
LISTEN_S = 2.0


@dataclass
class Check:
    name: str
    verdict: str  # "ok", "warn" or "FAIL"
    detail: str
    fix: str = ""

    def lines(self) -> list[str]:
        shown = [f"{self.verdict:<4}  {self.name}: {self.detail}"]
        return shown + ([f"      fix: {self.fix}"] if self.fix else [])


# --- judging (pure) ----------------------------------------------------------------------


def dbfs(value: float) -> float:
    return 20 * math.log10(value) if value > 0 else -math.inf


def judge_level(rms: float, peak: float, clipped: float = 0.0) -> tuple[str, str, str]:
    """(verdict, detail, fix) for a recording's RMS and peak, as fractions of full scale,
    and the fraction of its samples at full scale (a normalised recording touches it
    now and then; a clipping input stays there)."""
    detail = f"level over {LISTEN_S:.0f} s: RMS {dbfs(rms):.0f} dBFS, peak {dbfs(peak):.0f} dBFS"
    if peak < 10 ** (-70 / 20):
        return (
            "warn",
            f"{detail}: silent",
            "the input is muted or is the wrong device: unmute it, "
            "or choose another with stages.capture.source=mic:NAME",
        )
    if clipped > 0.001:
        return "warn", f"{detail}: clipping", "lower the input gain (alsamixer, or the desktop's sound settings)"
    return "ok", detail, ""


def judge_memory(model_mb: dict[str, float], stages: int, total_mb: float) -> tuple[str, str, str]:
    """(verdict, detail, fix): the models and the stage processes against the RAM."""
    need = sum(model_mb.values()) + stages * STAGE_RUNTIME_MB
    detail = (
        f"about {need:.0f} MB of {total_mb:.0f} MB RAM "
        f"(models {sum(model_mb.values()):.0f} MB, {stages} stages x {STAGE_RUNTIME_MB} MB)"
    )
    biggest = max(model_mb, key=model_mb.get) if model_mb else ""
    if need > total_mb * 0.9:
        return "FAIL", detail, f"choose smaller models (the largest: {biggest}) or run some stages on another host"
    if need > total_mb * 0.7:
        return "warn", detail, "little room is left for the desktop and its apps: close some, or choose smaller models"
    return "ok", detail, ""


# --- checks ------------------------------------------------------------------------------


def check_microphone(config: dict, listen: bool) -> Check:
    from bus.stage import StageError
    from stages.capture.microphone import Microphone

    source = str(config["stages"]["capture"]["source"])
    if not (source == "mic" or source.startswith("mic:")):
        return Check("microphone", "ok", f"source is a recording ({source}), not a microphone")
    try:
        microphone = Microphone(source.partition(":")[2] or None, 512, Counter())
    except StageError as error:
        return Check(
            "microphone", "FAIL", str(error), "plug in a microphone, or name one with stages.capture.source=mic:NAME"
        )
    found = f"{microphone.name} ({microphone.rate} Hz, {microphone.channels} channel(s))"
    if not listen:
        return Check("microphone", "ok", f"{found}; level not measured (--no-mic)")
    try:
        audio = microphone.sd.rec(
            int(LISTEN_S * microphone.rate),
            samplerate=microphone.rate,
            channels=microphone.channels,
            dtype="float32",
            device=microphone.device,
            blocking=True,
        )
    except microphone.sd.PortAudioError as error:
        return Check(
            "microphone",
            "FAIL",
            f"{found} cannot record: {error}",
            "close other programs holding it, or choose another device",
        )
    rms = float((audio**2).mean() ** 0.5) if audio.size else 0.0
    peak = float(abs(audio).max()) if audio.size else 0.0
    clipped = float((abs(audio) >= 0.99).mean()) if audio.size else 0.0
    verdict, detail, fix = judge_level(rms, peak, clipped)
    return Check("microphone", verdict, f"{found}; {detail}", fix)


def harmless_key(kind: str) -> list[str] | None:
    """A command that presses and releases Shift with the tool a sink uses: it proves
    the keyboard is reached without typing anything."""
    return {"wtype": ["wtype", "-k", "Shift_L"], "xdotool": ["xdotool", "key", "shift"]}.get(kind)


def check_typing(env) -> Check:
    from stages.keys.choice import choose_sink

    kind, reason = choose_sink(env)
    if kind == "stdout":
        return Check(
            "typing",
            "warn",
            f"auto would type to standard output: {reason}",
            "run voxkey inside the desktop session (or import its environment: see voxkey service)",
        )
    if kind == "wayland":
        why = press_shift_on_wayland(env)
    else:
        argv = harmless_key(kind)
        if argv is None:
            return Check("typing", "ok", f"auto would use {kind}: {reason}")
        try:
            pressed = subprocess.run(argv, env=dict(env), capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as error:
            return Check("typing", "FAIL", f"{kind} could not press a key: {error}", f"reinstall {kind} (./install)")
        why = (
            ""
            if pressed.returncode == 0
            else (pressed.stderr.strip().splitlines() or [f"exit {pressed.returncode}"])[-1]
        )
    if why:
        return Check(
            "typing",
            "FAIL",
            f"auto would use {kind}, which could not press a key: {why}",
            "on Wayland the compositor must offer the virtual-keyboard protocol (wlroots: labwc, sway); "
            "try --sink clipboard",
        )
    return Check("typing", "ok", f"auto would use {kind} ({reason}); a test key (Shift) was pressed")


def press_shift_on_wayland(env) -> str:
    """Presses Shift through the wayland sink's own keyboard: why it could not, or ""."""
    from stages.keys.sinks import SinkError
    from stages.keys.wayland import WaylandSink

    try:
        sink = WaylandSink(env=env)
    except SinkError as error:
        return str(error)
    try:
        sink.press("Shift_L")
    except SinkError as error:
        return str(error)
    finally:
        sink.close()
    return ""


def check_uinput() -> Check:
    from stages.keys.uinput import UINPUT, uinput_problem

    problem = uinput_problem()
    if problem:
        detail, fix = problem.split(": ", 1)
        return Check("uinput", "warn", f"{detail} (needed only by --sink uinput)", fix)
    return Check("uinput", "ok", f"{UINPUT} is writable")


def check_gadget(config: dict) -> Check:
    from voxkey import gadget

    verdict, detail, fix = gadget.describe(gadget.state(), str(config["stages"]["keys"]["hid_layout"]))
    return Check("usb gadget", verdict, detail + ("" if verdict == "ok" else " (needed only by --sink hid)"), fix)


def configured_models(config: dict) -> dict[str, str]:
    stages = config["stages"]
    return {stage: str(stages[stage]["model"]) for stage in ("asr", "instruct", "thinking")}


def model_path(stage: str, name: str) -> Path:
    from stages import asr
    from stages.llm import stage as llm

    return Path(asr.resolve_model(name) if stage == "asr" else llm.resolve_model(name))


def size_mb(path: Path) -> float:
    return models.bytes_on_disk(path) / MB


def stages_here(config: dict) -> tuple[str, ...]:
    """The stages this host runs, whose models and memory are checked here: with stages
    on another host (`--remote`, or as the voxkey running here was started), only ours,
    unless this host stands in for the others when they go (placement.fallback)."""
    from bus import placement
    from bus.config import ConfigError

    placed = remote.as_running(config, sockets.run_dir(config))
    if placed["placement"].get("fallback"):
        return wiring.STAGES
    try:
        return placement.stages_here(placed)
    except ConfigError:  # check_remote says what is wrong with the placement
        return wiring.STAGES


def check_models(
    config: dict, verify: bool, here: tuple[str, ...] = wiring.STAGES
) -> tuple[list[Check], dict[str, float]]:
    from bus.stage import StageError

    checks, sizes = [], {}
    manifest = models.load_manifest().models
    for stage, name in configured_models(config).items():
        if stage not in here:
            continue
        try:
            path = model_path(stage, name)
        except StageError as error:
            built_in = name in models.BUILT_IN
            fix = models.built_in_state(name).fix() if built_in else f"voxkey models fetch, or set stages.{stage}.model"
            checks.append(Check(f"model {stage}", "FAIL", str(error), fix))
            continue
        sizes[f"{stage} {name}"] = size_mb(path)
        where = f"{name} at {path} ({sizes[f'{stage} {name}']:.0f} MB)"
        if name not in manifest:
            checks.append(Check(f"model {stage}", "ok", f"{where}; no checksum to compare (embedded or a path)"))
            continue
        state = models.status(verify=verify)[list(manifest).index(name)].state
        good = {"verified", "installed"}
        checks.append(
            Check(
                f"model {stage}",
                "ok" if state in good else "FAIL",
                f"{where}: {state}" + ("" if verify else " (sizes; --verify checks SHA-256)"),
                "" if state in good else f"voxkey models fetch {name}",
            )
        )
    return checks, sizes


def check_multilingual(verify: bool) -> list[Check]:
    """The multilingual Whisper models, whichever model asr is set to: the built-in base
    (from the `multilingual` extra) and small (downloaded)."""
    base = models.built_in_state("base", verify=verify)
    about = "built-in multilingual model base"
    if base.usable:
        built_in = Check("whisper base", "ok", f"{about} at {base.path} ({size_mb(base.path):.0f} MB)")
    else:
        built_in = Check("whisper base", "warn", f"{about}: {base.state}", base.fix())
    small, folder = models.load_manifest().models["whisper-small"], models.models_dir()
    state = models.model_state(small, folder / small.name, verify)
    about = "multilingual model whisper-small"
    if state in ("verified", "installed"):
        where = small.path(folder)
        fetched = Check("whisper small", "ok", f"{about} at {where} ({size_mb(where):.0f} MB): {state}")
    else:
        shown = "not downloaded" if state == "missing" else state
        fetched = Check("whisper small", "warn", f"{about}: {shown}", "voxkey models fetch whisper-small")
    return [built_in, fetched]


def total_memory_mb() -> float:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024
    return 0.0


def check_supervisor(config: dict) -> list[Check]:
    from voxkey.supervise import Supervisor  # only here: every `voxkey` command imports this module

    found = shutil.which("supervisord", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    checks = [
        Check("supervisord", "ok", found)
        if found
        else Check("supervisord", "FAIL", "supervisord is not installed", "reinstall voxkey (./install)")
    ]
    run_dir = sockets.run_dir(config)
    if not run_dir.exists():
        checks.append(Check("run directory", "ok", f"{run_dir} (created private when voxkey starts)"))
        return checks
    try:
        sockets.check_private_dir(run_dir)
    except sockets.InsecureRunDir as error:
        checks.append(Check("run directory", "FAIL", str(error), "a run directory only you can open: see the message"))
        return checks
    running = Supervisor(run_dir, run_dir / "run.toml").states()
    detail = f"{run_dir}, private; " + (
        f"voxkey is running ({len(running)} stages)" if running else "voxkey is not running"
    )
    checks.append(Check("run directory", "ok", detail))
    return checks


def check_session(env) -> Check:
    seen = {name: env.get(name, "") for name in ("WAYLAND_DISPLAY", "DISPLAY", "XDG_SESSION_TYPE")}
    shown = ", ".join(f"{name}={value}" for name, value in seen.items() if value) or "no graphical session variables"
    return Check(
        "session",
        "ok" if seen["WAYLAND_DISPLAY"] or seen["DISPLAY"] else "warn",
        shown,
        "" if seen["WAYLAND_DISPLAY"] or seen["DISPLAY"] else "run voxkey from inside the desktop session",
    )


def check_heat(root: Path = Path("/"), throttled_text=heat.vcgencmd_throttled) -> Check:
    """Warns only when the firmware says the Pi is under-volted or throttled now; a
    machine that exposes none of it (no vcgencmd, no cpufreq) is told plainly."""
    verdict, detail, fix = heat.judge(heat.reading(root, throttled_text))
    return Check("heat", verdict, detail, fix)


def check_remote(config: dict) -> list[Check]:
    """A line per stage another host runs, as the stages here that listen to it hear it
    (none for a pipeline on one host); one not heard fails."""
    from bus.asking import ask_each
    from bus.config import ConfigError
    from voxkey.show_status import status_of

    try:
        config = remote.as_running(config, sockets.run_dir(config))
        away = remote.remote_stages(config)
    except ConfigError as error:
        return [Check("placement", "FAIL", str(error))]  # the message says what to do
    if not away:
        return []
    asked = ask_each(config, remote.listeners_here(away), "status", {}, timeout_s=1.0)
    answers = {stage: status_of(stage, said) for stage, said in asked.items()}
    found = remote.reports(away, answers, float(config["bus"]["heartbeat_s"]))
    return [Check(f"link {stage}", report.verdict, report.line, report.fix) for stage, report in found.items()]


def examine(config: dict, env, listen: bool, verify: bool) -> list[Check]:
    checks = [
        check_session(env),
        check_microphone(config, listen),
        check_typing(env),
        check_uinput(),
        check_gadget(config),
        check_heat(),
    ]
    here = stages_here(config)
    model_checks, sizes = check_models(config, verify, here)
    verdict, detail, fix = judge_memory(sizes, len(here), total_memory_mb())
    memory = Check("memory", verdict, detail, fix)
    machine = checks + model_checks + check_multilingual(verify) + [memory]
    return machine + check_supervisor(config) + check_remote(config)


def run(args) -> int:
    config = settings.load(args.config, args.set)
    remote.apply(config, args.remote)
    checks = examine(config, os.environ, listen=not args.no_mic, verify=args.verify)
    for check in checks:
        print("\n".join(check.lines()))
    failed = [check.name for check in checks if check.verdict == "FAIL"]
    print(f"voxkey doctor: {len(failed)} problem(s): {', '.join(failed)}" if failed else "voxkey doctor: ready")
    return 1 if failed else 0


def add_cli(commands) -> None:
    doctor = commands.add_parser("doctor", help="check the microphone, typing, models, memory, heat and supervisord")
    doctor.add_argument("--no-mic", action="store_true", help=f"do not record the microphone for {LISTEN_S:.0f} s")
    doctor.add_argument("--verify", action="store_true", help="check downloaded models' SHA-256 (reads them all)")
    remote.add_argument(doctor)
    doctor.add_argument("--config", default=os.environ.get("VOXKEY_CONFIG"), help="a TOML file laid over the defaults")
    doctor.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one setting")
    doctor.set_defaults(run=run)
