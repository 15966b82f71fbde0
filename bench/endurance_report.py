"""The soak and recovery benches' Markdown summary (`voxkey bench --soak/--recovery`),
which is also what they print; their JSON is written with `report.to_json`."""

from bench.report import file_lines, host_lines, section


def utterance_note(score: dict) -> str:
    note = (
        f"Utterances typed {score['typed']} of {score['expected']} expected, {score['right']} as the reference typed "
        f"them; merged with a neighbour (words intact) {len(score['merged'])}, missing {len(score['missing'])}, "
        f"different {len(score['different'])}, unexpected {len(score['unexpected'])}; dictated words typed in order "
        f"{score['dictated_words_right']} of {score['dictated_words_expected']}; typing errors {score['errors']}; "
        "model answers: "
        f"{', '.join(f'{n} {outcome}' for outcome, n in sorted(score['answer_outcomes'].items())) or 'none'}."
    )
    examples = [f"`{e['utt']}` typed {e['typed']!r}, expected {e['expected']!r}" for e in score["different"][:3]]
    examples += [f"`{e['utt']}` (cycle {e['cycle']}) missing: {e['expected']!r}" for e in score["missing"][:3]]
    examples += [f"`{e['utt']}` unexpected: {e['typed']!r}" for e in score["unexpected"][:3]]
    return note + "".join(f"\n\n* {example}" for example in examples)


def soak_lines(results: dict) -> list[str]:
    soak = results.get("soak")
    if not soak:
        return []
    memory = soak["memory"]
    losses = soak["losses"]
    by_cycle = soak["latency_by_cycle"]
    first, last = (by_cycle[0], by_cycle[-1]) if by_cycle else ({}, {})
    return (
        section(
            f"Soak: {soak['cycles']} cycles of {soak['cycle_s']} s ({soak['audio_min']} min of audio, "
            f"{soak['wall_min']} min wall)",
            [
                "stage",
                "RSS first MB",
                "after warm-up MB",
                "end MB",
                "peak MB",
                "growth after warm-up MB",
                "slope MB/min",
                "PSS end MB",
                "restarts",
            ],
            [
                [
                    name,
                    m["first_mb"],
                    m["warm_mb"],
                    m["end_mb"],
                    m["peak_mb"],
                    m["growth_after_warm_mb"],
                    m["slope_mb_per_min"],
                    m["end_pss_mb"],
                    soak["restarts"].get(name, 0),
                ]
                for name, m in memory.items()
            ],
            [
                f"Cycle: {', '.join(soak['recordings'])}, each followed by silence. Warm-up is the first cycle after "
                "every stage was ready; the slope is a least-squares fit of RSS after it.",
                utterance_note(soak["utterances"]),
                f"Frames lost {losses['lost']}, rejected {losses['rejected'] or 0}, audio gaps {losses['audio_gaps']}.",
            ],
        )
        + section(
            "Soak: end of speech → first keystroke by cycle, ms",
            ["cycle", "dictated n", "dictated median", "all n", "all median", "all p90"],
            [
                [
                    c["cycle"],
                    c["dictated"]["n"],
                    c["dictated"]["median"],
                    c["all"]["n"],
                    c["all"]["median"],
                    c["all"]["p90"],
                ]
                for c in by_cycle
            ],
            [
                f"First cycle median {first.get('all', {}).get('median')} ms, last {last.get('all', {}).get('median')} "
                "ms."
            ]
            if by_cycle
            else [],
        )
        + section(
            "Soak: end of speech → first keystroke by 10 minutes of the stream, ms",
            [
                "from minute",
                "dictated n",
                "dictated median",
                "all n",
                "all median",
                "all p90",
                "CPU taken by other processes",
            ],
            [
                [
                    w["from_min"],
                    w["dictated"]["n"],
                    w["dictated"]["median"],
                    w["all"]["n"],
                    w["all"]["median"],
                    w["all"]["p90"],
                    w.get("other_cpu_share"),
                ]
                for w in soak.get("latency_by_10_min", [])
            ],
            [
                "The last column is the share of the machine's CPU that processes outside the pipeline took in the "
                "window: where it is high, the window measured a busy machine."
            ],
        )
        + section(
            "Soak: RSS by minute, MB",
            ["minute", *memory.keys(), "total"],
            [
                [row["minute"], *(row["rss_mb"].get(name) for name in memory), row["total_mb"]]
                for row in soak["memory_by_minute"]
            ],
        )
    )


def recovery_lines(results: dict) -> list[str]:
    recovery = results.get("recovery")
    if not recovery:
        return []
    return section(
        f"Recovery: SIGKILL one stage at a time during a real-time replay ({recovery['cycles']} cycles, seed "
        f"{recovery['seed']})",
        ["stage", "kills", "mid-utterance", "kill → respawn median s", "kill → ready median s", "kill → ready max s"],
        [
            [
                stage,
                s["kills"],
                s["kills_mid_utterance"],
                s["kill_to_respawn_s"]["median"],
                s["kill_to_ready_s"]["median"],
                s["kill_to_ready_s"]["max"],
            ]
            for stage, s in recovery["per_stage"].items()
        ],
        [
            "Respawn: supervisord started a new process. Ready: the new process has started Python, loaded its engine "
            "and heard every peer it listens to. Mid-utterance: kills that struck while an utterance was between vad "
            "and its last keystroke.",
            "Typed text equals an undisturbed replay of the same stream: "
            f"**{'yes' if recovery['typed_equals_undisturbed'] else 'NO'}**; the same words, case and punctuation "
            f"aside: **{'yes' if recovery['same_words_as_undisturbed'] else 'NO'}**. "
            + utterance_note(recovery["utterances"])
            + (
                f" {recovery['not_done']} planned kills did not happen before the stream ended."
                if recovery["not_done"]
                else ""
            ),
        ],
    )


def endurance_markdown(results: dict) -> str:
    lines = [
        f"# voxkey soak and recovery {results['host']['timestamp']}",
        "",
        *host_lines(results),
        f"Settings: {results['settings']['summary']}.",
        "",
    ]
    return "\n".join(lines + soak_lines(results) + recovery_lines(results) + file_lines(results))
