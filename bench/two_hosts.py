"""`voxkey bench --two-hosts`: what the link costs when another machine is the brain.

Two network namespaces on this machine (bench/netns.py) are the Pi and the brain,
paired with `voxkey pair`; the brain runs `voxkey serve` (asr, instruct, thinking).
Each recording is replayed on the Pi with every stage its own ("one host") and with
`--remote brain` ("two hosts"), interleaved, `REPEATS` times, quiet and beside one
busy process. Per utterance, from the Pi's trace: end of speech -> first key, both
marks taken on the Pi (the hosts' clocks are never compared). The namespaces share
this machine's cores, so the brain is no faster here: the difference is what the
link adds (tcp, CURVE, the round trips), not what a bigger machine saves.

Then the link is cut (`ip link set down`) for `CUT_S` s during a real-time replay of
session_dictation.wav, against the same replay uncut: whether the same text was
typed, and how much later the utterances the cut held back were typed.
"""

import json
import os
import tempfile
import time
from pathlib import Path

from bench import hogs, netns
from bench.report import section
from bench.stats import ms_between, percentile, summarize

RECORDINGS = ("dictate_report.wav", "dictate_meeting.wav", "jfk.flac", "chat_capital.wav")
REPEATS = 3
CUT_RECORDING = "session_dictation.wav"
CUT_AFTER_S, CUT_S = 4.0, 6.0
ARMS = {"one host": (), "two hosts": ("--remote", "brain")}


def replay(pi: netns.Machine, recording: Path, trace: Path, *options: str) -> tuple[str, list[dict]]:
    """What the Pi typed, and its trace rows."""
    typed = pi.voxkey("replay", recording, "--trace", trace, *options).stdout
    return typed, [json.loads(line) for line in trace.read_text().splitlines()]


def first_key_ms(rows: list[dict]) -> list[float]:
    return [ms for row in rows if (ms := ms_between(row, "speech_end_ns", "first_key_ns")) is not None]


def latency_arms(pi: netns.Machine, audio_dir: Path, work: Path, say) -> dict:
    """machine load -> arm -> recording -> end of speech -> first key, every utterance."""
    found: dict = {}
    for load, busy in (("quiet", 0), ("beside one busy process", 1)):
        arms = found[load] = {arm: {name: [] for name in RECORDINGS} for arm in ARMS}
        with hogs.hogs(busy):
            for round_ in range(REPEATS):
                for name in RECORDINGS:
                    for arm, options in ARMS.items():
                        say(f"two hosts: {load}, round {round_ + 1}/{REPEATS}: {name} on {arm}")
                        trace = work / f"{load}-{arm}-{name}-{round_}.jsonl".replace(" ", "_")
                        played = replay(pi, audio_dir / name, trace, "--realtime", *options)[1]
                        arms[arm][name] += first_key_ms(played)
    return found


def cut_arm(link: netns.Link, pi: netns.Machine, recording: Path, work: Path, cut: bool) -> dict:
    """A real-time replay of `recording` on two hosts, the link cut meanwhile if `cut`."""
    trace = work / f"cut-{cut}.jsonl"
    log = f"cut-{cut}.log"
    replaying = pi.start("replay", recording, "--realtime", "--remote", "brain", "--trace", trace, log=log)
    try:
        pi.wait_for_log(log, "ready: replaying")
        if cut:
            time.sleep(CUT_AFTER_S)
            link.cut()
            time.sleep(CUT_S)
            link.restore()
        typed, _ = replaying.communicate(timeout=600)
    finally:
        link.restore()
        replaying.kill()
    if replaying.returncode != 0:
        raise netns.Failed(f"the replay failed: {pi.log(log)[-3000:]}")
    rows = sorted((json.loads(line) for line in trace.read_text().splitlines()), key=lambda row: row["utt"])
    latencies = {row["utt"]: ms_between(row, "speech_end_ns", "first_key_ns") for row in rows}
    return {"typed": typed, "first_key_ms": latencies}


def measure(config: dict, audio_dir: Path, out_dir: Path, say) -> dict:
    if not netns.can_make_namespaces():
        raise ValueError(f"the two-hosts bench {netns.NEEDS}")
    from bench import procs

    work = out_dir / f"two-hosts-{time.strftime('%Y%m%d-%H%M%S')}"
    work.mkdir(parents=True, exist_ok=True)
    before = procs.machine_reading()
    with tempfile.TemporaryDirectory(prefix="voxkey-two-hosts-") as hosts_dir:
        say("two hosts: pairing the Pi and the brain, starting `voxkey serve` on the brain")
        with netns.serving(Path(hosts_dir)) as (link, pi, brain):
            trips = netns.round_trips_ms(pi, brain)
            results: dict = {"repeats": REPEATS, "link_round_trip_ms": summarize(trips, 3)}
            results["arms"] = latency_arms(pi, audio_dir, work, say)
            say(f"two hosts: {CUT_RECORDING} at real time, uncut and with the link cut for {CUT_S:.0f} s")
            uncut, cut = (cut_arm(link, pi, audio_dir / CUT_RECORDING, work, c) for c in (False, True))
            results["cut"] = {"cut_after_s": CUT_AFTER_S, "cut_s": CUT_S, "uncut": uncut, "cut": cut}
    after = procs.machine_reading()
    results["load"] = procs.foreign_load(before, after, os.cpu_count() or 1)
    (work / "results.json").write_text(json.dumps(results, indent=1))
    (work / "summary.md").write_text(markdown(results))
    results["files"] = [str(work / "results.json"), str(work / "summary.md")]
    return results


def median(values: list[float]) -> float | None:
    return round(percentile(values, 50)) if values else None


def markdown(results: dict) -> str:
    rows = []
    for load, arms in results["arms"].items():
        for name in RECORDINGS:
            one, two = median(arms["one host"][name]), median(arms["two hosts"][name])
            added = two - one if one is not None and two is not None else None
            ratio = round(two / one, 2) if one and two is not None else None
            rows.append([load, name, one, two, added, ratio])
    trip = results["link_round_trip_ms"]
    cut = results["cut"]
    held = {
        utt: (ms, cut["uncut"]["first_key_ms"].get(utt))
        for utt, ms in cut["cut"]["first_key_ms"].items()
        if ms is not None and (cut["uncut"]["first_key_ms"].get(utt) or 0) + 1000 < ms
    }
    same = cut["cut"]["typed"] == cut["uncut"]["typed"]
    load = results.get("load", {})
    lines = section(
        f"Stages on two hosts: end of speech → first key ({results['repeats']} replays of each, medians)",
        ["machine", "recording", "one host ms", "two hosts ms", "added ms", "ratio"],
        rows,
        notes=[
            f"The link's own round trip (a TCP echo of one byte over the veth pair, {trip['n']} times): median "
            f"{trip['median']} ms, p90 {trip['p90']} ms. Replays at real time (--realtime). Both hosts share "
            "this machine's cores: the difference is what the link adds (tcp, CURVE, the frames' round trips), "
            "not what a bigger brain saves. Dictation crosses the "
            "link twice per utterance (speech there, transcript back); chat four times (and the answer's pieces). "
            "A chat's first key comes from the model's first token: on two hosts from the brain's instruct, loaded "
            "once by `voxkey serve` and warm from the replays before; on one host each replay starts its own. "
            "That difference is a warm model, not the link.",
            f"Other processes took {load.get('other_processes_share', 0):.0%} of the CPU meanwhile, "
            f"stolen {load.get('stolen_share', 0):.0%}.",
        ],
    )
    lines += section(
        f"The link cut for {cut['cut_s']:.0f} s, {cut['cut_after_s']:.0f} s into {CUT_RECORDING} at real time",
        ["utterance", "uncut: end of speech → first key ms", "cut ms"],
        [[utt, round(uncut), round(ms)] for utt, (ms, uncut) in held.items()],
        notes=[
            f"The same text typed as uncut: {'yes' if same else 'NO'}. "
            f"{len(held)} utterance(s) typed more than 1 s later than uncut (those the cut held back)."
        ],
    )
    return "\n".join(lines)
