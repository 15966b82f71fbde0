"""The embedded-model bench (bench/embedded_llm.py): its request set, its automatic
checks, and that what it asks a model is what the instruct stage would ask."""

from harness import Harness

from bench import answer_checks, embedded_llm, raw
from bus.frames import Request
from stages.instruct import Instruct


def test_the_request_set_asks_every_kind_in_every_language():
    requests = embedded_llm.load_requests()
    for language in embedded_llm.LANGUAGES:
        kinds = [r["kind"] for r in requests if r["language"] == language]
        assert {kind: kinds.count(kind) for kind in embedded_llm.KINDS} == {"clarify": 3, "chat": 3, "follow_up": 1}
    assert len({r["id"] for r in requests}) == len(requests)
    for request in requests:  # never taken for another language; a short question may say too little
        guessed = answer_checks.guess_language(" ".join(request["turns"]))
        assert guessed == request["language"] or (guessed == "" and request["kind"] == "chat"), request


def test_the_language_guess_knows_the_languages_apart_and_says_so_when_it_cannot():
    assert answer_checks.guess_language("Die Hauptstadt von Italien ist Rom.") == "de"
    assert answer_checks.guess_language("La capitale de l'Espagne est Madrid, je pense.") == "fr"
    assert answer_checks.guess_language("El sinónimo de feliz es contento.") == "es"
    assert answer_checks.guess_language("The capital of France is Paris.") == "en"
    assert answer_checks.guess_language("Paris.") == ""


def test_a_rewrite_passes_and_an_answer_a_translation_or_an_echo_fails():
    said, system = "ähm kannst du mir sagen wann das äh meeting anfängt", "You clean up dictated text."
    assert answer_checks.check_clarify(said, "Kannst du mir sagen, wann das Meeting anfängt?", "de", system).passed
    answered = answer_checks.check_clarify(said, "Das Meeting fängt um zehn Uhr an, glaube ich.", "de", system)
    translated = answer_checks.check_clarify(said, "Can you tell me when the meeting starts?", "de", system)
    echoed = answer_checks.check_clarify(said, f"{system} Kannst du mir sagen wann das Meeting anfängt", "de", system)
    assert not answered.passed and not translated.passed and "in en" in translated.failed
    assert "echoes the prompt" in echoed.failed


def test_an_answer_holds_the_word_expected_in_the_language_asked_and_is_no_echo():
    first = "Me llamo Maria y vivo en Lisboa."
    assert answer_checks.check_answer("Te llamas María.", ["Maria"], "es", [first]).passed
    assert answer_checks.check_answer("Berlin.", ["Berlín"], "es", []).passed
    assert not answer_checks.check_answer("The capital is Berlin.", ["Berlín"], "es", []).passed
    assert answer_checks.check_answer(first, ["Maria"], "es", [first]).failed == ["echoes the prompt"]


def test_the_bench_asks_what_the_instruct_stage_asks_a_follow_up_included(tmp_path):
    """Same settings, prompt builder, sampling and seeds: the stage answering the turns of
    a conversation is given exactly the prompts the bench gives the model."""
    request = next(r for r in embedded_llm.load_requests() if r["id"] == "de-follow_up-1")
    stage = Harness(Instruct, tmp_path)
    model = raw.Model(stage.stage.settings)
    asked_stage, asked_bench = recording(stage.stage.llm), recording(model.llm)
    answered = embedded_llm.answer(model, request)
    for number, text in enumerate(request["turns"], 1):
        turn = Request(mode="chat", text=text, language="de")
        stage.send("router", turn, utt=f"{request['id']}/{number}", reliable=True)
    assert asked_bench == asked_stage and len(asked_bench) == 2
    assert "Answer in German." in asked_bench[0] and answered["outputs"][0] in asked_bench[1]


def recording(engine) -> list[str]:
    """The prompts `engine` is asked to stream from, as they come."""
    seen, complete = [], engine.create_completion

    def record(prompt, *args, **kwargs):
        if kwargs.get("stream"):
            seen.append(prompt)
        return complete(prompt, *args, **kwargs)

    engine.create_completion = record
    return seen


def test_the_report_shows_each_models_figures_and_outputs():
    answered = [
        {
            **request,
            "outputs": ["Paris."] * len(request["turns"]),
            "measures": [{"ttft_ms": 50.0, "tokens_per_s": 80.0}],
            "passed": request["kind"] == "chat",
            "verdict": "pass" if request["kind"] == "chat" else "fail: no Maria",
        }
        for request in embedded_llm.load_requests()
    ]
    result = {
        "label": "tiny",
        "gguf_name": "Tiny",
        "chat_template": True,
        "format": "chatml",
        "gguf_bytes": 10**8,
        "load_s": 0.2,
        "threads": 1,
        "batch_threads": 2,
        "loadavg_before": [0.5, 0, 0],
        "loadavg_after": [0.7, 0, 0],
        "requests": answered,
    }
    result["summary"] = embedded_llm.summarise(result)
    shown = embedded_llm.markdown({"timestamp": "now", "cpus": 2, "requests_file": "r.toml", "models": [result]})
    overall = "| tiny | Tiny, a chat template | chatml | 100.0 | 0.2 | 0/12 | 12/12 | 0/4 | 50.0 | 80.0 | 0.5 → 0.7 |"
    assert overall in shown
    assert "| tiny | de | 0/3 | 3/3 | 0/1 | 50.0 | 80.0 |" in shown
    assert "Paris. / Paris. **fail: no Maria**" in shown
