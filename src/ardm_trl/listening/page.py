"""The HTML page of a CMOS listening test, modelled on the VGPO paper's Figures 3-5 (Appendix C).

The page is one self-contained file (inline CSS and JavaScript, no external assets): instructions, a listener id, then
one card per item with the reference audio (when given), the text, Audio A and Audio B, and a required five-point
preference (`A +2`, `A +1`, `No Preference`, `B +1`, `B +2`). Submit POSTs the answers as JSON to `submit` (relative to
the page), where [`CMOSServer`] appends them to `answers.jsonl`. The page never says which system is on which side.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["CHOICES", "CHOICE_LABELS", "TEST_TYPES", "CMOSTestType", "render_page"]

# Answer values as the page posts them, from "A much better" to "B much better".
CHOICES: tuple[str, ...] = ("A+2", "A+1", "0", "B+1", "B+2")
CHOICE_LABELS: dict[str, str] = {"A+2": "A +2", "A+1": "A +1", "0": "No Preference", "B+1": "B +1", "B+2": "B +2"}


@dataclass(frozen=True)
class CMOSTestType:
    """Wording of one CMOS test, as in the paper's listening-test pages."""

    name: str
    short: str
    title: str
    criterion: str
    question: str
    requires_reference: bool = False


_COMMON = ("Then listen to Audio A and Audio B in any order.", "Use headphones in a quiet environment.")

TEST_TYPES: dict[str, CMOSTestType] = {
    "naturalness": CMOSTestType(
        "naturalness", "N-CMOS", "Speech Naturalness Listening Test",
        "Choose which audio sounds more natural overall.", "Which audio sounds more natural?",
    ),
    "similarity": CMOSTestType(
        "similarity", "S-CMOS", "Speaker Similarity Listening Test",
        "Judge which test audio sounds like it was spoken by the same person as the reference speaker.\n"
        "Focus only on speaker identity (the voice itself), not on how the sentence is read.",
        "Which speaker sounds more similar to the reference?", requires_reference=True,
    ),
    "expressiveness": CMOSTestType(
        "expressiveness", "E-CMOS", "Speech Expressiveness Listening Test",
        "Choose which audio sounds more expressive overall.", "Which audio sounds more expressive?",
    ),
}


def _instructions(test_type: CMOSTestType, has_reference: bool) -> list[str]:
    steps = ["Listen to the reference audio first.", *_COMMON] if has_reference else [
        "Listen to Audio A and Audio B in any order.", _COMMON[1]]
    return steps + test_type.criterion.split("\n")


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;background:#f0ebf8;margin:0;color:#202124}
main{max-width:760px;margin:24px auto;padding:0 12px}
.card{background:#fff;border-radius:8px;border:1px solid #dadce0;padding:20px 24px;margin-bottom:12px}
.card.header{border-top:10px solid #673ab7}
h1{font-size:28px;font-weight:400;margin:0 0 12px}
h2{font-size:17px;font-weight:600;margin:16px 0 8px}
h2:first-child{margin-top:0}
.item-title{font-size:13px;color:#5f6368;margin-bottom:4px}
.text{background:#f8f9fa;border-left:4px solid #673ab7;padding:10px 14px;font-size:16px;line-height:1.5}
.pair{display:flex;gap:16px;flex-wrap:wrap;margin-top:16px}
.pair>div{flex:1 1 300px}
audio{width:100%}
.req{color:#d93025}
.scale{display:flex;justify-content:space-between;gap:4px;margin-top:8px}
.scale label{flex:1;text-align:center;cursor:pointer;padding:6px 2px;border-radius:4px;font-size:14px}
.scale label:hover{background:#f1f3f4}
.scale input{display:block;margin:0 auto 6px;width:18px;height:18px;accent-color:#673ab7}
.card.missing{border:2px solid #d93025}
input[type=text]{font-size:16px;padding:6px 8px;width:60%;border:none;border-bottom:1px solid #9aa0a6}
button{background:#673ab7;color:#fff;border:none;border-radius:4px;padding:10px 24px;font-size:15px;cursor:pointer}
button:disabled{background:#b39ddb;cursor:default}
#status{margin-left:12px}
#status.error{color:#d93025}
#status.done{color:#188038;font-weight:600}
"""

# Collects the answers, refuses to submit until every item and the listener id are filled, then POSTs them.
_SCRIPT = """
const TEST = JSON.parse(document.getElementById("cmos-test").textContent);
const startedAt = new Date().toISOString();
const answeredAt = {};
const played = {};
for (const audio of document.querySelectorAll("audio[data-item]")) {
  audio.addEventListener("play", () => {
    played[audio.dataset.item] = played[audio.dataset.item] || {};
    played[audio.dataset.item][audio.dataset.role] = true;
  });
}
for (const radio of document.querySelectorAll("input[type=radio][data-item]")) {
  radio.addEventListener("change", () => {
    answeredAt[radio.dataset.item] = new Date().toISOString();
    radio.closest(".card").classList.remove("missing");
  });
}
function setStatus(text, kind) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = kind;
}
document.getElementById("cmos-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const listener = document.getElementById("listener").value.trim();
  const answers = [];
  const missing = [];
  TEST.items.forEach((item, index) => {
    const checked = document.querySelector(`input[name="pref-${index}"]:checked`);
    const card = document.getElementById(`item-${index}`);
    if (checked === null) { missing.push(index + 1); card.classList.add("missing"); return; }
    answers.push({item: item, choice: checked.value, answered_at: answeredAt[item] || null,
                  played: played[item] || {}});
  });
  if (!listener) { setStatus("Please enter your listener ID.", "error"); return; }
  if (missing.length) { setStatus(`Please answer item(s) ${missing.join(", ")}.`, "error"); return; }
  const button = document.getElementById("submit");
  button.disabled = true;
  setStatus("Submitting...", "");
  const payload = {test_id: TEST.test_id, test_type: TEST.test_type, listener: listener, started_at: startedAt,
                   submitted_at: new Date().toISOString(), user_agent: navigator.userAgent, answers: answers};
  try {
    const response = await fetch("submit", {method: "POST", headers: {"Content-Type": "application/json"},
                                            body: JSON.stringify(payload)});
    const reply = await response.json();
    if (!response.ok) throw new Error(reply.error || response.statusText);
    setStatus("Thank you! Your answers have been saved.", "done");
  } catch (error) {
    button.disabled = false;
    setStatus(`Could not save your answers (${error.message}). Please try again.`, "error");
  }
});
"""


def _audio(src: str, item_index: int, item_id: str, role: str) -> str:
    return (f'<audio controls preload="auto" src="{html.escape(src)}" data-item="{html.escape(item_id)}" '
            f'data-role="{role}" id="{role}-{item_index}"></audio>')


def _item_card(index: int, total: int, item: dict, test_type: CMOSTestType) -> str:
    item_id = item["id"]
    parts = [f'<section class="card item" id="item-{index}" data-item="{html.escape(item_id)}">',
             f'<div class="item-title">Item {index + 1} of {total}</div>']
    if item.get("reference"):
        parts += ["<h2>Reference Audio</h2>", _audio(item["reference"], index, item_id, "reference")]
    parts += ["<h2>Text</h2>", f'<div class="text">{html.escape(item["text"])}</div>', '<div class="pair">']
    for side in ("A", "B"):
        parts += [f"<div><h2>Audio {side}</h2>", _audio(item[f"audio_{side.lower()}"], index, item_id, side), "</div>"]
    parts += ["</div>", "<h2>Your Preference</h2>",
              f'<div>{html.escape(test_type.question)} <span class="req">*</span></div>', '<div class="scale">']
    for choice in CHOICES:
        parts.append(f'<label><input type="radio" name="pref-{index}" value="{choice}" data-item="{html.escape(item_id)}"'
                     f' required>{CHOICE_LABELS[choice]}</label>')
    parts += ["</div>", "</section>"]
    return "\n".join(parts)


def render_page(items: Sequence[dict], test_type: str, test_id: str, title: str | None = None) -> str:
    """Render the test page.

    Args:
        items (`Sequence[dict]`):
            Items in presentation order, each with `id`, `text`, `audio_a`, `audio_b` and optionally `reference`
            (URLs relative to the page). Nothing in them may say which system is on which side.
        test_type (`str`):
            One of `TEST_TYPES` (`"naturalness"`, `"similarity"`, `"expressiveness"`).
        test_id (`str`):
            Identifier of this build, posted back with the answers so answers of another build are rejected.
        title (`str`, *optional*):
            Page heading; defaults to the paper's title for the test type.
    """
    spec = TEST_TYPES[test_type]
    title = title or spec.title
    has_reference = any(item.get("reference") for item in items)
    steps = "".join(f"<li>{html.escape(step)}</li>" for step in _instructions(spec, has_reference))
    data = json.dumps({"test_id": test_id, "test_type": test_type, "items": [item["id"] for item in items]})
    data = data.replace("</", "<\\/")  # a `</script>` inside an item id must not close the data block
    cards = "\n".join(_item_card(i, len(items), item, spec) for i, item in enumerate(items))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<main>
<form id="cmos-form" novalidate>
<section class="card header">
<h1>{html.escape(title)}</h1>
<h2>Instructions</h2>
<ol>{steps}</ol>
<label for="listener"><b>Listener ID</b> <span class="req">*</span></label><br>
<input type="text" id="listener" name="listener" autocomplete="off" required placeholder="your name or code">
</section>
{cards}
<section class="card">
<button type="submit" id="submit">Submit</button><span id="status" role="status"></span>
</section>
</form>
</main>
<script type="application/json" id="cmos-test">{data}</script>
<script>{_SCRIPT}</script>
</body>
</html>
"""
