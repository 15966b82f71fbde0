"""The prompt builder (stages/llm/prompts.py): requests in, prompt text out, from the data
in models/prompts.toml. In-process and pure, but for two checks through the stages: the
instruct and thinking stages lay out what the builder says (a scripted engine that only
answers the expected prompt), and a chat in German through the real instruct process
with Gemma 3 270M."""

import json
from pathlib import Path

import pytest
from conftest import LoneStage
from harness import Harness

from bus import frames, models
from bus.frames import Request
from stages.instruct import Instruct
from stages.llm.prompts import DEFAULT_FORMAT, PromptBook, format_for, language_name, load_prompts
from stages.thinking.stage import Thinking
from stages.thinking.tools import tool_specs

PROMPTS = load_prompts()
GEMMA = PromptBook.of(PROMPTS, "gemma3")
CHATML = PromptBook.of(PROMPTS, "chatml")
GEMMA_BUILT_IN = "gemma3-270m"
# Where the Gemma GGUF is put together until it is a built-in model (bus/models.py).
GEMMA_PATH = Path("/tmp/gemma/gemma-3-270m-q4_k_m.gguf")
SAID = "um so I think we should uh go home now"


def system_text(mode: str) -> str:
    return PROMPTS["modes"][mode]["system"]


def test_gemma_has_no_system_turn_its_system_text_opens_the_first_user_turn():
    prompt = GEMMA.for_request(Request(mode="clarify", text=SAID))
    assert prompt == (
        f"<start_of_turn>user\n{system_text('clarify')}\n\nRewrite: {SAID}<end_of_turn>\n<start_of_turn>model\n"
    )
    assert "system" not in prompt.replace(system_text("clarify"), "")
    assert GEMMA.stop("clarify") == ["<end_of_turn>", "<start_of_turn>", "\n\n"]


def test_gemma_holds_the_system_text_once_in_a_conversation_and_the_tools_with_it():
    earlier = [GEMMA.user("converse", "What is 17 times 23?"), {"role": "assistant", "content": "391."}]
    prompt = GEMMA.for_request(Request(mode="converse", text="And halved?"), earlier, tool_specs())
    turns = prompt.split("<start_of_turn>")[1:]
    assert [turn.split("\n", 1)[0] for turn in turns] == ["user", "model", "user", "model"]
    assert prompt.count(system_text("converse")) == 1 and turns[0].index(system_text("converse")) == len("user\n")
    assert json.dumps(tool_specs()) in turns[0] and turns[0].endswith("What is 17 times 23?<end_of_turn>\n")


@pytest.mark.parametrize("book", [GEMMA, CHATML], ids=["gemma3", "chatml"])
@pytest.mark.parametrize("mode", ["clarify", "chat", "converse"])
def test_the_warm_up_is_the_start_of_every_prompt_of_its_mode(book, mode):
    """llama.cpp reuses the longest prefix a prompt shares with what it evaluated: the
    warm-up must be exactly the start of a request's prompt, Gemma's folded turn too."""
    tools = tool_specs() if mode == "converse" else None
    warm_up = book.prompt(mode, [], tools, generation=False)
    assert book.for_request(Request(mode=mode, text="Hello there."), tools=tools).startswith(warm_up)
    if not tools:
        assert warm_up.endswith(system_text(mode) + ("\n\n" if book is GEMMA else "<|im_end|>\n"))


@pytest.mark.parametrize(
    ("architecture", "family"),
    [("gemma3", "gemma3"), ("gemma2", "gemma3"), ("lfm2", "lfm2"), ("llama", DEFAULT_FORMAT), ("", DEFAULT_FORMAT)],
)
def test_the_format_follows_the_models_architecture(architecture, family):
    assert format_for({"general.architecture": architecture}, PROMPTS["formats"]) == family
    assert PromptBook.for_model({"general.architecture": architecture}, "lfm2", PROMPTS).family == "lfm2"


@pytest.mark.parametrize(
    ("mode", "language", "line"),
    [
        ("clarify", "de", "The text is in German. Keep it in German; never translate it."),
        ("clarify", "fr", "The text is in French. Keep it in French; never translate it."),
        ("chat", "es", "Answer in Spanish."),
        ("chat", "de-AT", "Answer in German."),
        ("converse", "FR", "Answer in French."),
    ],
)
def test_a_known_language_adds_the_modes_line_to_its_system_text(mode, language, line):
    for book in (GEMMA, CHATML):
        prompt = book.for_request(Request(mode=mode, text="Hallo.", language=language))
        assert f"{system_text(mode)} {line}" in prompt


@pytest.mark.parametrize("language", ["", "xx", "  "])
@pytest.mark.parametrize("mode", ["clarify", "chat", "converse"])
def test_an_unknown_language_leaves_the_prompt_as_it_was(mode, language):
    request = Request(mode=mode, text="Hello.", language=language)
    assert CHATML.for_request(request) == (
        f"<|im_start|>system\n{system_text(mode)}<|im_end|>\n"
        f"<|im_start|>user\n{PROMPTS['modes'][mode]['user'].format(text='Hello.')}<|im_end|>\n<|im_start|>assistant\n"
    )
    assert "Answer in" not in GEMMA.for_request(request) and "never translate" not in GEMMA.for_request(request)


def test_every_language_the_production_models_speak_has_a_name():
    for code in ("en", "ar", "zh", "fr", "de", "ja", "ko", "es", "it", "pt", "nl"):
        assert language_name(PROMPTS["languages"], code), code


def scripted(tmp_path: Path, when: list[str], pieces: list[str]) -> str:
    """A Gemma stand-in that answers only a prompt holding every one of `when`."""
    script = tmp_path / "gemma.json"
    turns = [{"when": when, "pieces": pieces}]
    script.write_text(json.dumps({"metadata": {"general.architecture": "gemma3"}, "turns": turns}))
    return f"scripted:{script}"


@pytest.mark.parametrize(
    ("stage_class", "mode", "pieces"),
    [(Instruct, "chat", ["Berlin", "."]), (Thinking, "converse", ["<think>", "Hauptstadt", "</think>", "Berlin", "."])],
)
def test_instruct_and_thinking_ask_in_gemmas_layout_for_the_language_spoken(tmp_path, stage_class, mode, pieces):
    question = "Was ist die Hauptstadt von Deutschland?"
    expected = f"<start_of_turn>user\n{system_text(mode)} Answer in German."
    model = scripted(tmp_path, [expected, question + "<end_of_turn>\n<start_of_turn>model\n"], pieces)
    stage = Harness(stage_class, tmp_path, f"stages.{stage_class.name}.model={model}")
    stage.send("router", Request(mode=mode, text=question, language="de"), utt="u1", reliable=True)
    assert "".join(f.body.text for f in stage.published("keystrokes")).strip() == "Berlin."


def gemma_model() -> str:
    """The Gemma 3 270M model setting: the built-in if there is one, else its GGUF's path."""
    try:
        models.built_in_path(GEMMA_BUILT_IN)
        return GEMMA_BUILT_IN
    except (KeyError, models.ModelError) as error:
        missing = f"the built-in {GEMMA_BUILT_IN} is not installed ({error})"
    if GEMMA_PATH.is_file():
        return str(GEMMA_PATH)
    pytest.skip(f"no Gemma 3 270M: {missing}, nor is there {GEMMA_PATH}")


def test_a_chat_in_german_through_the_real_instruct_stage_with_gemma_is_answered():
    """The real process on real sockets, laying out Gemma's format from its GGUF. Only
    the first words are waited for (then cancelled, to keep it quick), never pinned."""
    instruct = LoneStage("instruct", ["router"], f'stages.instruct.model="{gemma_model()}"')
    try:
        request = Request(mode="chat", text="Was ist die Hauptstadt von Deutschland?", language="de", lead="")
        instruct.send("router", request, utt="de", key="de")
        first = instruct.frames(lambda f: f.topic == "keystrokes" and (f.body.text.strip() or f.body.final))
        instruct.send("router", frames.Cancel(reason="enough"), utt="de")
        rest = instruct.frames(lambda f: f.topic == "keystrokes" and f.body.final)
        typed = "".join(f.body.text for f in first + rest if f.topic == "keystrokes")
        assert typed.strip(), [f.body for f in first + rest]
        [report] = [f.body for f in first + rest if f.topic == "generation"]
        assert report.outcome in ("answered", "cancelled") and report.tokens > 0, report
    finally:
        instruct.close()
