"""The prompt builder: a request's prompt text from the data in models/prompts.toml (the
model family's format, the mode's texts, the language spoken) and the messages before it.

Pure: values in, text out. The model stages and the benches lay every prompt out here,
so what a bench measures is the prompt voxkey gives its model.
"""

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from bus.frames import Request

PROMPTS_PATH = Path(__file__).resolve().parents[2] / "models" / "prompts.toml"
# A GGUF whose architecture no format claims is laid out as ChatML, which most small
# instruction-tuned models were trained on.
DEFAULT_FORMAT = "chatml"


def load_prompts(path: Path = PROMPTS_PATH) -> dict:
    with open(path, "rb") as file:
        return tomllib.load(file)


def format_for(metadata: dict, formats: dict) -> str:
    """The format that claims the GGUF's architecture (its `architectures` are prefixes of
    `general.architecture`: "lfm2" claims lfm2 and lfm2moe), else the default."""
    architecture = metadata.get("general.architecture", "")
    for name, layout in formats.items():
        if any(architecture.startswith(prefix) for prefix in layout.get("architectures", ())):
            return name
    return DEFAULT_FORMAT


def language_name(languages: dict, code: str) -> str:
    """The English name of an ISO 639-1 code ("de", "de-AT", "DE" -> "German"); "" when
    unknown, and then a prompt says nothing about the language."""
    return languages.get(code.strip().lower().replace("_", "-").partition("-")[0], "")


def fold_system(join: str, messages: list[dict]) -> list[dict]:
    """For a model with no system role: the system text opens the first user turn, laid
    out by `join` ("{system}\\n\\n{content}"). With no question yet (the warm-up, which
    evaluates what every prompt of a mode shares) the turn is left open where the
    question will go."""
    if not messages or messages[0]["role"] != "system":
        return messages
    system, rest = messages[0]["content"], messages[1:]
    if rest and rest[0]["role"] == "user":
        return [{"role": "user", "content": join.format(system=system, content=rest[0]["content"])}, *rest[1:]]
    opening = join.partition("{content}")[0].format(system=system)
    if not rest:
        return [{"role": "user", "content": opening, "open": True}]
    return [{"role": "user", "content": opening.rstrip()}, *rest]


def render(layout: dict, messages: list[dict], tools: list[dict] | None = None, generation: bool = True) -> str:
    """Lay a conversation out as one prompt string, ending where the assistant speaks
    (or, without `generation`, where the last message ends)."""
    if tools and messages and messages[0]["role"] == "system":
        listed = layout["tool_list"].format(tools=json.dumps(tools))
        messages = [{"role": "system", "content": messages[0]["content"] + "\n" + listed}, *messages[1:]]
    if layout.get("system_in_first_user"):
        messages = fold_system(layout["system_in_first_user"], messages)
    parts = [layout["begin"]]
    for message in messages:
        template = layout[message["role"]]
        if message.get("open"):
            parts.append(template.partition("{content}")[0] + message["content"])
        else:
            parts.append(template.format(content=message["content"]))
    if generation:
        parts.append(layout["generation"])
    return "".join(parts)


@dataclass(frozen=True)
class PromptBook:
    """What models/prompts.toml says for one model family: its layout, the modes' texts
    and the names of the languages a prompt can ask for."""

    family: str
    layout: dict
    modes: dict
    languages: dict

    @classmethod
    def of(cls, prompts: dict, family: str) -> "PromptBook":
        return cls(family, prompts["formats"][family], prompts["modes"], prompts.get("languages", {}))

    @classmethod
    def for_model(cls, metadata: dict, format_setting: str = "", prompts: dict | None = None) -> "PromptBook":
        """The book for a loaded GGUF: the `format` setting if given, else the format
        its architecture calls for."""
        prompts = prompts or load_prompts()
        return cls.of(prompts, format_setting or format_for(metadata, prompts["formats"]))

    def system(self, mode: str, language: str = "") -> str:
        """The mode's system text, and, when the language is known, the mode's line
        about it ("Answer in German."). In the system text, not the question, so the
        earlier turns of a conversation are laid out as they were: a follow-up in the
        same language extends the prompt before it (llama.cpp evaluates only what is
        new); only a change of language makes the conversation be evaluated again."""
        text, name = self.modes[mode]["system"], language_name(self.languages, language)
        line = self.modes[mode].get("language", "")
        return f"{text} {line.format(language=name)}" if name and line else text

    def user(self, mode: str, text: str) -> dict:
        return {"role": "user", "content": self.modes[mode]["user"].format(text=text)}

    def prompt(
        self,
        mode: str,
        messages: list[dict],
        tools: list[dict] | None = None,
        generation: bool = True,
        language: str = "",
    ) -> str:
        system = {"role": "system", "content": self.system(mode, language)}
        return render(self.layout, [system, *messages], tools, generation)

    def for_request(self, request: Request, earlier: list[dict] | None = None, tools: list[dict] | None = None) -> str:
        """A request's prompt after the `earlier` messages of its conversation."""
        messages = [*(earlier or []), self.user(request.mode, request.text)]
        return self.prompt(request.mode, messages, tools, language=request.language)

    def stop(self, mode: str) -> list[str]:
        """Where generation ends: the format's end of turn, then the mode's own."""
        return list(self.layout["stop"]) + list(self.modes[mode]["stop"])

    def max_tokens(self, mode: str) -> int:
        return int(self.modes[mode]["max_tokens"])
