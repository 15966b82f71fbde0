"""instruct: `request`s in clarify and chat mode -> `keystrokes`, with the Instruct model.

Consumes: `request` (modes clarify and chat), handed over reliably by the router; `cancel`.
Produces: `keystrokes`, handed over reliably to the router, and, per request, a
`generation` report (prompt tokens, time to first token, time to first typed token,
tokens/s, total time, outcome).
Both work in the utterance's language when it is known (Request.language): the prompt
asks a rewrite to keep it and an answer to be given in it.
*chat*: the answer is typed as it is generated, piece by piece; the conversation so
far is in the prompt and survives a restart (stages/llm/conversation.py, the state file).
*clarify*: the rewrite is checked before a key is pressed; if the model fails, runs
out of time, is cancelled, or returns something that is not a rewrite of what was
said (an answer, a comment, far more words), the original text is typed instead:
what the user said is never lost.
Guarantees: model output is typed as text only (bus/text.py); a cancel stops typing
within one token.
"""

from bus.frames import Frame
from bus.stage import main
from bus.text import words
from stages.llm.stage import Cancelled, LlmStage, Metrics, TimedOut

FILLERS = {"um", "uh", "erm", "er", "ah", "hmm", "like", "so", "well", "you", "know", "i", "mean"}


def is_rewrite(original: str, candidate: str) -> bool:
    """Whether `candidate` is the same utterance cleaned up, not an answer or a comment:
    no longer than the original, its words the original's, most of those kept."""
    said, rewritten = words(original), words(candidate)
    if not rewritten or len(candidate.strip()) > 1.2 * len(original.strip()) + 10:
        return False
    said_set = set(said)
    borrowed = sum(word in said_set for word in rewritten) / len(rewritten)
    content = [word for word in said if word not in FILLERS]
    kept = sum(word in set(rewritten) for word in content) / max(1, len(content))
    return borrowed >= 0.8 and kept >= 0.6


class Instruct(LlmStage):
    name = "instruct"
    modes = ("clarify", "chat")

    def answer(self, frame: Frame, metrics: Metrics) -> tuple[str, str]:
        prompt = self.request_prompt(frame)
        if frame.body.mode == "chat":
            for piece in self.generate(frame, metrics, prompt):
                self.type(frame, metrics, piece)
            return "answered", ""
        return self.clarify(frame, metrics, prompt)

    def clarify(self, frame: Frame, metrics: Metrics, prompt: str) -> tuple[str, str]:
        original = frame.body.text
        try:
            candidate = "".join(
                self.generate(frame, metrics, prompt, float(self.settings["clarify_timeout_s"]))
            ).strip()
        except Cancelled:
            self.type(frame, metrics, original)
            return "fallback", "cancelled"
        except TimedOut:
            self.type(frame, metrics, original)
            return "fallback", "timed out"
        except Exception as error:
            self.type(frame, metrics, original)
            return "fallback", f"model failed: {error}"
        if not is_rewrite(original, candidate):
            self.type(frame, metrics, original)
            return "fallback", f"not a rewrite: {candidate[:80]!r}"
        self.type(frame, metrics, candidate)
        return "rewritten", ""


if __name__ == "__main__":
    main(Instruct)
