"""Conversations: does a follow-up's time to first token stay close to the first turn's
while the conversation in its prompt grows?

Each stream asks one question again and again, every repeat a turn of the same
conversation, and is replayed at real time through every process, with room after each
question for its answer (new speech would cut an answer short). Per turn it reports the
prompt tokens, the stage's own time to first token and router → first token. The
stream with a clarify between the chat turns shows what a request of another mode
costs the conversation: the instruct stage evaluates the clarify prompt in between, so
llama.cpp's cache no longer holds the chat.
"""

import json
import time
from pathlib import Path

from bench import workload
from bench.endpointing import replay_arm
from bench.report import llm_requests, section

STREAMS = {
    "chat": ["chat_capital.wav"] * 4,
    "converse": ["converse_math.wav"] * 3,
    "chat with clarify between": ["chat_capital.wav", "clarify_launch.wav"] * 2 + ["chat_capital.wav"],
}
# Room for an answer: SmolLM2 may write converse's whole 512 tokens at ~65 tokens/s.
GAP_S = 12.0


def turns(rows: list[dict]) -> list[dict]:
    """The stream's model requests in the order asked, each with its measures."""
    return sorted(llm_requests(rows), key=lambda request: workload.start_ms(request["utt"]) or 0)


def measure(config: dict, audio_dir: Path, out_dir: Path, say) -> dict:
    work = out_dir / f"conversation-{time.strftime('%Y%m%d-%H%M%S')}"
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"gap_s": GAP_S, "streams": {}}
    for name, recordings in STREAMS.items():
        cycle = workload.build_cycle([audio_dir / recording for recording in recordings], GAP_S)
        path = workload.write_stream(cycle, 1, work / f"{name.replace(' ', '-')}.wav", 0.0)
        say(f"conversation: {name}: replaying {cycle.seconds:.0f} s at real time")
        results["streams"][name] = turns(replay_arm(config, path)["rows"])
    (work / "results.json").write_text(json.dumps(results, indent=1))
    (work / "summary.md").write_text(markdown(results))
    results["files"] = [str(work / "results.json"), str(work / "summary.md")]
    return results


def markdown(results: dict) -> str:
    lines = ["# voxkey conversations: time to first token by turn", ""]
    for name, asked in results["streams"].items():
        lines += section(
            f"{name} ({results['gap_s']} s after each question)",
            ["turn", "mode", "outcome", "prompt tokens", "TTFT ms", "router → first token ms", "tokens/s"],
            [
                [
                    number,
                    turn["mode"],
                    turn["outcome"],
                    turn["prompt_tokens"],
                    turn["ttft_ms"],
                    turn["router_to_first_token_ms"],
                    turn["tokens_per_s"],
                ]
                for number, turn in enumerate(asked, 1)
            ],
        )
    return "\n".join(lines)
