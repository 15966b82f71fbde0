"""Which model should be the embedded instruct model? Each candidate answers the same
held-out requests (bench/embedded_llm_requests.toml) in English, German, French and
Spanish: clarify rewrites, chat questions with one right answer, and a follow-up that
needs the turn before it.

What is measured is what voxkey would do: the instruct stage's settings
([stages.instruct] of the configuration, the model aside), its prompt builder
(stages/llm/prompts.py: the format the GGUF's architecture calls for, the mode's texts,
the language line) and its sampling, stop strings and seed, through bench/raw.py's
Model, which loads an engine as the stage does. Each request starts from the state a
stage has after its warm-up (the mode's system prompt evaluated); a follow-up's second
turn finds its first turn cached, as in the stage. Each output is checked automatically
(bench/answer_checks.py) and shown in the report for a person to judge.

    python -m bench.embedded_llm [--models smollm2-135m,/path/to/model.gguf] [--out bench/results/embedded_llm.md]
"""

import argparse
import json
import os
import time
import tomllib
from pathlib import Path

from bench import answer_checks, raw
from bench.stats import percentile
from bus import config as configuration
from bus import cpus as cpu_plan
from bus import models
from bus.frames import Request
from stages.llm import stage as llm_support
from stages.llm.conversation import Turn, as_messages

BENCH = Path(__file__).resolve().parent
REQUESTS = BENCH / "embedded_llm_requests.toml"
OUT = BENCH / "results" / "embedded_llm.md"
LANGUAGES = ("en", "de", "fr", "es")
KINDS = ("clarify", "chat", "follow_up")
CURRENT = "smollm2-135m"
CANDIDATE = "gemma3-270m"
CELL_CHARS = 240
# Where the candidate's GGUF is put together while it is not installed as a built-in.
CANDIDATE_PATH = Path("/tmp/gemma/gemma-3-270m-q4_k_m.gguf")


def default_models() -> list[str]:
    """The embedded model and the candidate: its built-in if installed, else its GGUF."""
    try:
        models.built_in_path(CANDIDATE)
        return [CURRENT, CANDIDATE]
    except (KeyError, models.ModelError):
        return [CURRENT, *([str(CANDIDATE_PATH)] if CANDIDATE_PATH.is_file() else [])]


def load_requests(path: Path = REQUESTS) -> list[dict]:
    """Every request as {id, kind, language, turns, expect}; ids like "de-chat-2"."""
    with open(path, "rb") as file:
        data = tomllib.load(file)
    requests, counted = [], {}
    for kind in KINDS:
        for item in data.get(kind, []):
            number = counted[kind, item["language"]] = counted.get((kind, item["language"]), 0) + 1
            requests.append(
                {
                    "id": f"{item['language']}-{kind}-{number}",
                    "kind": kind,
                    "language": item["language"],
                    "turns": item.get("turns") or [item["text"]],
                    "expect": item.get("expect", []),
                }
            )
    return requests


def label(model: str) -> str:
    """A model's name in the report: a path by its file's stem."""
    return Path(model).stem if model.endswith(".gguf") else model


def mode_of(kind: str) -> str:
    return "clarify" if kind == "clarify" else "chat"


def answer(model: raw.Model, request: dict) -> dict:
    """The request through the instruct prompt path: its outputs (one per turn), each
    turn's measures, and the verdict on the last."""
    mode, language = mode_of(request["kind"]), request["language"]
    model.fresh(mode, warm=True)
    earlier: list[Turn] = []
    outputs, measures = [], []

    def asked(said: str) -> dict:
        return model.book.user(mode, said)

    for number, text in enumerate(request["turns"], 1):
        utt = f"{request['id']}/{number}"
        prompt = model.book.for_request(Request(mode=mode, text=text, language=language), as_messages(earlier, asked))
        measured, output = model.complete(utt, mode, prompt)
        outputs.append(output.strip())
        measures.append(measured)
        earlier.append(Turn(utt, text, output.strip()))
    system = model.book.system(mode, language)
    if request["kind"] == "clarify":
        found = answer_checks.check_clarify(request["turns"][0], outputs[-1], language, system)
    else:
        found = answer_checks.check_answer(outputs[-1], request["expect"], language, [system, *request["turns"]])
    return {**request, "outputs": outputs, "measures": measures, "passed": found.passed, "verdict": found.describe()}


def measure_model(config: dict, model_name: str, requests: list[dict], say) -> dict:
    settings = {**config["stages"]["instruct"], "model": model_name}
    path = llm_support.resolve_model(model_name)
    load_before = os.getloadavg()
    started = time.perf_counter()
    model = raw.Model(settings)
    load_s = time.perf_counter() - started
    say(f"embedded llm: {label(model_name)} ({model.book.family} format) loaded in {load_s:.2f} s")
    answered = []
    for request in requests:
        answered.append(answer(model, request))
        say(f"  {request['id']}: {answered[-1]['verdict']}")
    engine = cpu_plan.for_stage("instruct", settings)
    return {
        "model": model_name,
        "label": label(model_name),
        "path": str(path),
        "format": model.book.family,
        # What the file says it is: an instruction-tuned GGUF carries its chat template.
        "gguf_name": model.llm.metadata.get("general.name", ""),
        "chat_template": "tokenizer.chat_template" in model.llm.metadata,
        "gguf_bytes": path.stat().st_size,
        "load_s": round(load_s, 3),
        "threads": engine.threads,
        "batch_threads": engine.batch,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "requests": answered,
    }


def timings(answered: list[dict]) -> dict:
    """Medians over every turn answered: time to first token, tokens/s."""
    turns = [measured for request in answered for measured in request["measures"]]

    def median(key: str) -> float | None:
        found = percentile([turn[key] for turn in turns if turn[key]], 50)
        return None if found is None else round(found, 1)

    return {"ttft_ms": median("ttft_ms"), "tokens_per_s": median("tokens_per_s")}


def passes(answered: list[dict]) -> dict[str, list[int]]:
    """Per kind: [passed, asked]."""
    return {
        kind: [sum(r["passed"] for r in answered if r["kind"] == kind), sum(r["kind"] == kind for r in answered)]
        for kind in KINDS
    }


def summarise(result: dict) -> dict:
    """A model's figures overall and per language."""
    by_language = {
        language: {**passes(asked), **timings(asked)}
        for language in LANGUAGES
        if (asked := [r for r in result["requests"] if r["language"] == language])
    }
    return {"overall": {**passes(result["requests"]), **timings(result["requests"])}, "languages": by_language}


def report_paths(out: Path) -> tuple[Path, Path]:
    """The Markdown report and the JSON beside it; `out` is the report or its folder."""
    markdown_path = out if out.suffix == ".md" else out / OUT.name
    return markdown_path, markdown_path.with_suffix(".json")


def measure(config: dict, out: Path, say, model_names: list[str] | None = None, requests_path: Path = REQUESTS) -> dict:
    """Every model on every request; the results written as Markdown and JSON at `out`."""
    requests = load_requests(requests_path)
    results = {
        "timestamp": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cpus": len(os.sched_getaffinity(0)),
        "requests_file": str(requests_path),
        "models": [measure_model(config, name, requests, say) for name in model_names or default_models()],
    }
    for result in results["models"]:
        result["summary"] = summarise(result)
    markdown_path, json_path = report_paths(out)
    markdown_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=1, ensure_ascii=False))
    markdown_path.write_text(markdown(results))
    results["files"] = [str(markdown_path), str(json_path)]
    return results


def cell(text: str) -> str:
    """Model output fit for a table cell: one line, no column breaks, its start only
    (a runaway repeats itself; the JSON has all of it)."""
    text = text or "(nothing)"
    text = text if len(text) <= CELL_CHARS else text[:CELL_CHARS] + "…"
    return text.replace("|", "\\|").replace("\n", " ⏎ ")


def fraction(passed_asked: list[int]) -> str:
    return f"{passed_asked[0]}/{passed_asked[1]}"


def table(header: list[str], rows: list[list]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(str(value) for value in row) + " |" for row in rows),
        "",
    ]


def markdown(results: dict) -> str:
    lines = [
        "# The embedded instruct model: SmolLM2 against its candidates",
        "",
        f"{results['timestamp']}, {results['cpus']} cores; requests: `{results['requests_file']}` "
        "(held out). Prompts, sampling and settings as the instruct stage has them. "
        "A clarify passes when voxkey would type it (stages/instruct.py: is_rewrite), it keeps "
        f"{answer_checks.KEPT_ENOUGH:.0%} of the content words and is not another language; "
        "a chat answer when it holds the expected word and is not another language; "
        "a follow-up when its second answer holds the name given in the first turn. "
        "Times are medians over every turn answered (time to first token from a warm stage's state).",
        "",
    ]
    lines += table(
        ["model", "GGUF says", "format", "GGUF MB", "load s", "clarify", "chat", "follow-up", "TTFT ms", "tokens/s"]
        + ["load avg"],
        [
            [
                result["label"],
                f"{result['gguf_name']}, {'a' if result['chat_template'] else 'no'} chat template",
                result["format"],
                round(result["gguf_bytes"] / 1e6, 1),
                result["load_s"],
                *(fraction(result["summary"]["overall"][kind]) for kind in KINDS),
                result["summary"]["overall"]["ttft_ms"],
                result["summary"]["overall"]["tokens_per_s"],
                f"{result['loadavg_before'][0]} → {result['loadavg_after'][0]}",
            ]
            for result in results["models"]
        ],
    )
    lines += ["## Per language", ""]
    lines += table(
        ["model", "language", "clarify", "chat", "follow-up", "TTFT ms", "tokens/s"],
        [
            [result["label"], language, *(fraction(figures[kind]) for kind in KINDS), figures["ttft_ms"]]
            + [figures["tokens_per_s"]]
            for result in results["models"]
            for language, figures in result["summary"]["languages"].items()
        ],
    )
    threads = ", ".join(f"{r['label']} {r['threads']} (batch {r['batch_threads']})" for r in results["models"])
    lines += [
        f"Threads: {threads}. Load avg: the 1-minute load average before and after each model's run.",
        "",
        "## What each model wrote",
        "",
    ]
    for kind in KINDS:
        lines += [f"### {kind.replace('_', '-')}", ""]
        asked = [r for r in results["models"][0]["requests"] if r["kind"] == kind]
        lines += table(
            ["id", "asked", *(result["label"] for result in results["models"])],
            [
                [request["id"], cell(" / ".join(request["turns"]))]
                + [outcome(result, request["id"]) for result in results["models"]]
                for request in asked
            ],
        )
    return "\n".join(lines)


def outcome(result: dict, request_id: str) -> str:
    [answered] = [r for r in result["requests"] if r["id"] == request_id]
    return f"{cell(' / '.join(answered['outputs']))} **{answered['verdict']}**"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.embedded_llm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", help=f"comma-separated model names or GGUF paths (default: {default_models()})")
    parser.add_argument("--out", default=str(OUT), help="the Markdown report (the JSON goes beside it)")
    parser.add_argument("--requests", default=str(REQUESTS), help="the request set")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.models.split(",") if name.strip()] if args.models else None
    results = measure(configuration.load(), Path(args.out), print, names, Path(args.requests))
    print(markdown(results))
    print("\n" + "\n".join(results["files"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
