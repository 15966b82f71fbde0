"""Bus microbenchmark: how fast the project's own frames move between two processes.

A sender process binds one PUB socket (bus.sockets.publisher) on an ipc:// endpoint in
a private temporary directory; this process subscribes (bus.sockets.subscriber). There
is no broker: voxkey wires publishers to subscribers directly, and so does this.
Every frame is built, encoded (bus.frames.encode), sent, received and decoded with
full validation (bus.frames.decode), as a stage does.

Two frame sizes: audio-sized (an `audio` frame with 512 int16 samples, a 1 KB
payload) and token-sized (a `keystrokes` frame carrying about 20 bytes of text).
For each:
* throughput: the sender sends as fast as it can; frames/s is counted at the
  receiver, from the first frame decoded to the last;
* hop latency: the sender stamps CLOCK_MONOTONIC just before encoding and sends one
  frame per millisecond (unloaded); latency is the time from that stamp to the end of
  decoding on the receiver, p50 and p99.
Frames lost: those sent that never arrived (sequence numbers run from 0 each run).

    python -m bench.bus [--frames N] [--latency-frames N]
"""

import argparse
import json
import multiprocessing
import shutil
import sys
import tempfile
import time
from pathlib import Path

import zmq

from bench.stats import summarize
from bus import frames, sockets

AUDIO_PAYLOAD = bytes(1024)
TOKEN_TEXT = " the capital of Fran"  # 20 bytes: a streamed piece of a model's answer
KINDS = ("audio", "token")
TOPOLOGY = (
    "direct wiring, no broker: one PUB socket bound by the sender, one SUB connected by the receiver, "
    "ipc:// in a private temp dir"
)


def make_frame(kind: str, seq: int) -> frames.Frame:
    marks = {"sent": frames.now_ns()}
    if kind == "audio":
        return frames.Frame(
            frames.AudioChunk(stream="bench", offset=seq * 512), "capture", seq, marks=marks, payload=AUDIO_PAYLOAD
        )
    return frames.Frame(
        frames.Keystrokes(text=TOKEN_TEXT, final=False), "instruct", seq, utt="bench@000000000ms", marks=marks
    )


def sender(endpoint: str, commands) -> None:
    """Child process: announce itself until told to start, then run what it is told."""
    context = zmq.Context()
    pub = sockets.publisher(context, endpoint)
    beat = 0
    # ZeroMQ's slow joiner: until the receiver hears us, frames would go nowhere.
    while not commands.poll(0.005):
        pub.send_multipart(frames.encode(frames.Frame(frames.Heartbeat(ready=True, pid=0), "bench", beat)))
        beat += 1
    commands.recv()  # the go-ahead: the receiver hears us
    while True:
        command = commands.recv()
        if command is None:
            break
        kind, count, interval_s = command
        for seq in range(count):
            if interval_s:
                time.sleep(interval_s)
            pub.send_multipart(frames.encode(make_frame(kind, seq)), copy=False)
        pub.send_multipart(frames.encode(frames.Frame(frames.StreamStop(stream=kind), "bench", 0)))
    pub.close()
    context.term()


def receive_phase(sub, count: int) -> dict:
    """Take frames until the sender's end; times of arrival and hop latencies."""
    arrivals, latencies = [], []
    while True:
        if not sub.poll(10_000):
            raise TimeoutError("bus benchmark: the sender went quiet")
        frame = frames.decode(sub.recv_multipart())
        now = frames.now_ns()
        if isinstance(frame.body, frames.StreamStop):
            break
        if isinstance(frame.body, frames.Heartbeat):
            continue
        arrivals.append(now)
        latencies.append((now - frame.marks["sent"]) / 1e3)
    # Sequence numbers run 0..count-1 in a phase, so what did not arrive was lost.
    return {"arrivals": arrivals, "latencies_us": latencies, "lost": count - len(arrivals)}


def frames_per_s(arrivals: list[int]) -> float | None:
    if len(arrivals) < 2 or arrivals[-1] == arrivals[0]:
        return None
    return round((len(arrivals) - 1) / ((arrivals[-1] - arrivals[0]) / 1e9))


def run(throughput_frames: int = 20_000, latency_frames: int = 2_000, interval_s: float = 0.001) -> dict:
    run_dir = Path(tempfile.mkdtemp(prefix="voxkey-bus-bench-"))  # mode 0700
    sockets.check_private_dir(run_dir)
    endpoint = f"ipc://{run_dir / 'bench.sock'}"
    spawn = multiprocessing.get_context("spawn")  # a ZeroMQ context must not cross a fork
    ours, theirs = spawn.Pipe()
    child = spawn.Process(target=sender, args=(endpoint, theirs), daemon=True)
    child.start()
    context = zmq.Context()
    sub = sockets.subscriber(context, [endpoint], ["audio", "keystrokes", "heartbeat", "stream-stop"])
    results = {"topology": TOPOLOGY, "frame_bytes": {}, "kinds": {}}
    try:
        if not sub.poll(30_000):
            raise TimeoutError("bus benchmark: the sender never started")
        ours.send("go")
        for kind in KINDS:
            results["frame_bytes"][kind] = sum(len(part) for part in frames.encode(make_frame(kind, 0)))
            ours.send((kind, throughput_frames, 0.0))
            flood = receive_phase(sub, throughput_frames)
            ours.send((kind, latency_frames, interval_s))
            paced = receive_phase(sub, latency_frames)
            hop = summarize(paced["latencies_us"])
            results["kinds"][kind] = {
                "frames": throughput_frames,
                "frames_per_s": frames_per_s(flood["arrivals"]),
                "latency_frames": latency_frames,
                "hop_p50_us": hop["median"],
                "hop_p99_us": hop["p99"],
                "lost": flood["lost"] + paced["lost"],
            }
        ours.send(None)
        child.join(10)
    finally:
        if child.is_alive():
            child.kill()
        sub.close()
        context.term()
        shutil.rmtree(run_dir, ignore_errors=True)
    return results


def format_results(results: dict) -> str:
    lines = [f"bus microbenchmark ({results['topology']})"]
    for kind, numbers in results["kinds"].items():
        lines.append(
            f"  {kind:5} frames ({results['frame_bytes'][kind]} B on the wire): "
            f"{numbers['frames_per_s']} frames/s; hop p50 {numbers['hop_p50_us']} us, p99 {numbers['hop_p99_us']} us; "
            f"lost {numbers['lost']}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bus", description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20_000, help="frames per throughput run")
    parser.add_argument("--latency-frames", type=int, default=2_000, help="paced frames per latency run")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    results = run(args.frames, args.latency_frames)
    print(json.dumps(results, indent=2) if args.json else format_results(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
