"""English sentences for the TTS corpus: a small grammar that writes varied sentences, and "hard" repetitive ones.

The sentence lists ship with the package (`resources/sentences_normal.txt`, `resources/sentences_hard.txt`) and
are read with [`load_sentences`]. They were written by [`generate_sentences`] and can be rebuilt with
`python -m ardm_trl.data.sentences` (deterministic given the seed).

Hard sentences follow task B of the VGPO paper (Sec. 4.3): a normal sentence with randomly repeated words,
phrases and clauses ("the old the old the old man walked home"), which autoregressive TTS models tend to
mis-speak by skipping, adding or looping on the repetitions.
"""

from __future__ import annotations

import random
from functools import cache
from importlib import resources

__all__ = ["generate_sentences", "load_sentences", "make_hard_sentence"]

_RESOURCE_FILES = {"normal": "sentences_normal.txt", "hard": "sentences_hard.txt"}

# ---------------------------------------------------------------------------------------------------------------
# Vocabulary. Singular nouns take the regular plural "+s" unless listed in _PLURALS.
_PEOPLE = ["man", "woman", "child", "teacher", "doctor", "farmer", "pilot", "student", "baker", "painter", "driver",
           "singer", "writer", "nurse", "lawyer", "sailor", "soldier", "neighbour", "cousin", "stranger", "captain",
           "gardener", "scientist", "musician", "engineer", "grandmother", "boy", "girl", "king", "queen", "judge",
           "waiter", "poet", "hunter", "fisherman", "clerk", "guard", "friend", "brother", "sister"]  # fmt: skip
_ANIMALS = ["dog", "cat", "horse", "bird", "fox", "rabbit", "mouse", "lion", "bear", "goat", "duck", "owl", "whale",
            "frog", "tiger", "sheep", "wolf", "deer", "monkey", "eagle"]  # fmt: skip
_THINGS = ["book", "letter", "cup", "chair", "table", "lamp", "window", "door", "bottle", "clock", "key", "coat",
           "basket", "ball", "bicycle", "boat", "map", "song", "picture", "ticket", "bag", "box", "phone", "apple",
           "bridge", "candle", "garden", "river", "mountain", "road", "train", "car", "ship", "house", "stone",
           "flower", "tree", "shoe", "hat", "knife", "piano", "radio", "story", "question", "message", "parcel",
           "blanket", "kettle", "ladder", "mirror", "pencil", "umbrella", "wallet", "cake", "sandwich", "egg"]  # fmt: skip
_PLURALS = {"man": "men", "woman": "women", "child": "children", "fisherman": "fishermen", "mouse": "mice",
            "sheep": "sheep", "deer": "deer", "knife": "knives", "wolf": "wolves"}  # fmt: skip
_ADJECTIVES = ["old", "young", "tall", "small", "big", "quiet", "noisy", "happy", "tired", "clever", "brave", "kind",
               "strange", "lonely", "busy", "careful", "angry", "gentle", "curious", "famous", "red", "blue", "green",
               "yellow", "black", "white", "heavy", "broken", "shiny", "wooden", "ancient", "tiny", "huge", "cold",
               "warm", "wet", "dry", "empty", "bright", "dark", "soft", "sharp", "clean", "dirty", "new", "lost",
               "hungry", "sleepy", "proud", "polite"]  # fmt: skip
_PLACES = ["in the kitchen", "at the station", "near the river", "under the bridge", "in the garden", "on the hill",
           "at the market", "in the library", "behind the house", "across the street", "by the sea", "in the forest",
           "at the school", "on the roof", "in the village", "at the airport", "inside the museum", "near the lake",
           "on the beach", "in the park", "at the corner", "down the road", "in the city", "on the farm",
           "at the hospital", "in the office", "beside the fire", "on the train", "in the valley", "at the harbour"]  # fmt: skip
_TIMES = ["yesterday", "this morning", "last night", "on Monday", "every evening", "after lunch", "before dawn",
          "at noon", "last summer", "in the winter", "on Sunday afternoon", "two days ago", "at midnight",
          "early today", "late in the evening", "once a week", "after the storm", "before the party",
          "during the holiday", "last year"]  # fmt: skip
_ADVERBS = ["slowly", "quickly", "quietly", "loudly", "carefully", "happily", "suddenly", "gently", "eagerly",
            "nervously", "politely", "calmly", "bravely", "softly", "proudly", "patiently", "silently", "boldly"]  # fmt: skip
# (past tense, object-taking) verbs
_TRANSITIVE = ["found", "carried", "painted", "bought", "sold", "opened", "closed", "broke", "fixed", "washed",
               "watched", "followed", "chased", "helped", "called", "visited", "forgot", "remembered", "dropped",
               "lifted", "pushed", "pulled", "hid", "lost", "cleaned", "borrowed", "wrapped", "dropped", "noticed",
               "admired", "described", "photographed", "counted", "moved", "showed", "packed"]  # fmt: skip
_INTRANSITIVE = ["walked", "laughed", "waited", "slept", "danced", "sang", "shouted", "smiled", "cried", "listened",
                 "worked", "ran", "jumped", "swam", "rested", "whispered", "arrived", "left", "returned", "stayed",
                 "fell", "climbed", "travelled", "paused", "hurried", "wandered"]  # fmt: skip
# present-tense forms for questions and habits: base forms of some of the verbs above
_BASE_TRANSITIVE = ["find", "carry", "paint", "buy", "sell", "open", "close", "fix", "wash", "watch", "follow",
                    "help", "call", "visit", "remember", "lift", "clean", "borrow", "wrap", "notice", "describe",
                    "count", "move", "pack"]  # fmt: skip
_THIRD_PERSON = {"carry": "carries", "fix": "fixes", "wash": "washes", "watch": "watches", "buy": "buys"}
_NAMES = ["Anna", "Ben", "Clara", "David", "Emma", "Frank", "Grace", "Henry", "Isabel", "Jack", "Kate", "Leo",
          "Maria", "Nathan", "Olivia", "Peter", "Rose", "Sam", "Tom", "Victor", "Helen", "Oscar", "Lucy", "Mark"]  # fmt: skip
_NUMBERS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve", "twenty", "forty",
            "a hundred"]  # fmt: skip
_CONNECTIVES = ["because", "while", "although", "after", "before", "when", "until", "since"]
_FEELINGS = ["glad", "surprised", "sorry", "worried", "sure", "afraid", "certain", "happy"]
_EXCLAMATIONS = ["What a {adj} {thing} that is!", "How {adj} the {thing} looks today!", "Look at that {adj} {animal}!",
                 "Watch out for the {adj} {thing}!", "Listen to the {animal} {place}!"]  # fmt: skip
_PREPOSITIONS = ["with", "without", "for", "beside", "behind", "near"]


def _plural(noun: str) -> str:
    if noun in _PLURALS:
        return _PLURALS[noun]
    if noun.endswith(("ch", "sh", "x", "s")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _third_person(verb: str) -> str:
    return _THIRD_PERSON.get(verb, verb + "s")


class _Grammar:
    """A random sentence writer over the vocabulary above (one job: produce grammatical, varied sentences)."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def pick(self, words: list[str]) -> str:
        return self.rng.choice(words)

    def noun_phrase(self, pool: list[str] | None = None, allow_plural: bool = True) -> tuple[str, bool]:
        """Return (phrase, is_plural)."""
        noun = self.pick(pool or self.rng.choice([_PEOPLE, _ANIMALS, _THINGS]))
        plural = allow_plural and self.rng.random() < 0.25
        if plural:
            noun = _plural(noun)
        determiner = self.pick(["the", "the", "my", "our", "her", "his"] + (["those"] if plural else ["that", "a"]))
        if plural and self.rng.random() < 0.3:
            determiner = self.pick(_NUMBERS)
        if self.rng.random() < 0.45:
            noun = f"{self.pick(_ADJECTIVES)} {noun}"
        if determiner == "a" and noun[0] in "aeiou":
            determiner = "an"
        return f"{determiner} {noun}", plural

    def agent(self) -> tuple[str, bool]:
        if self.rng.random() < 0.3:
            return self.pick(_NAMES), False
        return self.noun_phrase(self.rng.choice([_PEOPLE, _PEOPLE, _ANIMALS]))

    def clause(self) -> str:
        subject, _ = self.agent()
        if self.rng.random() < 0.55:
            obj, _ = self.noun_phrase(_THINGS + _ANIMALS)
            parts = [subject, self.pick(_TRANSITIVE), obj]
        else:
            parts = [subject, self.pick(_INTRANSITIVE)]
            if self.rng.random() < 0.4:
                parts.append(self.pick(_ADVERBS))
        if self.rng.random() < 0.5:
            parts.append(self.pick(_PLACES))
        if self.rng.random() < 0.3:
            parts.append(self.pick(_TIMES))
        return " ".join(parts)

    def sentence(self) -> str:
        kind = self.rng.choices(
            ["statement", "compound", "question", "habit", "quote", "exclaim", "imperative", "feeling", "count"],
            weights=[30, 14, 12, 10, 6, 5, 8, 8, 7],
        )[0]
        return getattr(self, f"_{kind}")()

    # -- sentence kinds -----------------------------------------------------------------------------------------
    def _statement(self) -> str:
        text = self.clause()
        if self.rng.random() < 0.2:
            text = f"{self.pick(_TIMES).capitalize()}, {text}"
        return _finish(text, ".")

    def _compound(self) -> str:
        first, second = self.clause(), self.clause()
        link = self.pick(_CONNECTIVES + ["and", "but", "so"])
        joiner = ", " if link in ("and", "but", "so") else " "
        return _finish(f"{first}{joiner}{link} {second}", ".")

    def _question(self) -> str:
        subject, plural = self.agent()
        verb = self.pick(_BASE_TRANSITIVE)
        obj, _ = self.noun_phrase(_THINGS)
        auxiliary = self.pick(["did", "will", "can", "should", "do" if plural else "does"])
        if self.rng.random() < 0.4:
            wh = self.pick(["Why", "When", "Where", "How"])
            return _finish(f"{wh} {auxiliary} {subject} {verb} {obj}", "?")
        return _finish(f"{auxiliary} {subject} {verb} {obj} {self.pick(_PLACES)}", "?")

    def _habit(self) -> str:
        subject, plural = self.agent()
        verb = self.pick(_BASE_TRANSITIVE)
        obj, _ = self.noun_phrase(_THINGS)
        when = self.pick(["every morning", "on weekends", "twice a day", "every evening", "once a week", "in spring"])
        return _finish(f"{subject} {verb if plural else _third_person(verb)} {obj} {when}", ".")

    def _quote(self) -> str:
        speaker = self.pick(_NAMES)
        said = self.pick(["said", "asked", "replied", "whispered", "shouted"])
        inner = self.clause()
        end = "?" if said == "asked" else "."
        return f'{speaker} {said}, "{inner[0].upper()}{inner[1:]}{end}"'

    def _exclaim(self) -> str:
        template = self.pick(_EXCLAMATIONS)
        return template.format(
            adj=self.pick(_ADJECTIVES), thing=self.pick(_THINGS), animal=self.pick(_ANIMALS), place=self.pick(_PLACES)
        )

    def _imperative(self) -> str:
        verb = self.pick(_BASE_TRANSITIVE)
        obj, _ = self.noun_phrase(_THINGS)
        extra = self.pick(["", f" {self.pick(_PLACES)}", f" {self.pick(_ADVERBS)}", f" {self.pick(_TIMES)}"])
        prefix = self.pick(["", "Please ", "Now ", "Do not "])
        return _finish(f"{prefix}{verb} {obj}{extra}".strip(), self.pick([".", ".", "!"]))

    def _feeling(self) -> str:
        name = self.pick(_NAMES)
        return _finish(f"{name} was {self.pick(_FEELINGS)} that {self.clause()}", ".")

    def _count(self) -> str:
        number = self.pick(_NUMBERS)
        noun = _plural(self.pick(_ANIMALS + _THINGS))
        adjective = self.pick(_ADJECTIVES)
        return _finish(f"There were {number} {adjective} {noun} {self.pick(_PLACES)}", ".")


def _finish(text: str, end: str) -> str:
    text = " ".join(text.split())
    return text[0].upper() + text[1:] + end


def generate_sentences(num_sentences: int = 3000, seed: int = 0, min_words: int = 4, max_words: int = 16) -> list[str]:
    """Write `num_sentences` distinct sentences with the grammar (deterministic given `seed`)."""
    rng = random.Random(seed)
    grammar = _Grammar(rng)
    seen: set[str] = set()
    sentences: list[str] = []
    attempts = 0
    while len(sentences) < num_sentences:
        attempts += 1
        if attempts > 50 * num_sentences:
            raise ValueError(f"Could not write {num_sentences} distinct sentences of {min_words}-{max_words} words.")
        sentence = grammar.sentence()
        if min_words <= len(sentence.split()) <= max_words and sentence not in seen:
            seen.add(sentence)
            sentences.append(sentence)
    return sentences


def make_hard_sentence(sentence: str, rng: random.Random, max_words: int = 30) -> str:
    """Insert random repetitions of a word, a phrase (2-3 words) or the whole clause into `sentence` (VGPO task B).

    Example: `"The old man walked home."` -> `"The old man the old man the old man walked home walked home."`
    """
    words = sentence.rstrip(".?!").split()
    end = sentence[-1] if sentence[-1] in ".?!" else "."
    kind = rng.choice(["word", "phrase", "clause", "mixed"])
    operations = {"word": ["word"], "phrase": ["phrase"], "clause": ["clause"], "mixed": ["word", "phrase"]}[kind]
    for operation in operations:
        if operation == "clause" and len(words) <= 9:
            repeats = rng.randint(2, 3)
            clause = [_lower_if_first(w, i) for i, w in enumerate(words[:-1])] + [words[-1] + ","]
            words = words[:-1] + [words[-1] + ","] + clause * (repeats - 1)
            words[-1] = words[-1].rstrip(",")
            continue
        span = 1 if operation == "word" else rng.randint(2, min(3, len(words)))
        start = rng.randrange(0, len(words) - span + 1)
        chunk = [_lower_if_first(w.strip(","), start + i) for i, w in enumerate(words[start : start + span])]
        repeats = rng.randint(2, 4) if span == 1 else rng.randint(2, 3)
        words = words[: start + span] + chunk * (repeats - 1) + words[start + span :]
    words = words[:max_words]
    text = " ".join(words).rstrip(",")
    return text[0].upper() + text[1:] + end


def _lower_if_first(word: str, position: int) -> str:
    """Lower-case the sentence-initial word when it is repeated mid-sentence (names keep their capital)."""
    return word.lower() if position == 0 and word not in _NAMES else word


def _generate_hard_sentences(bases: list[str], num_sentences: int, seed: int) -> list[str]:
    """One hard sentence per base sentence (so no two hard sentences share a base across a train/test split)."""
    rng = random.Random(seed + 1)
    hard = [make_hard_sentence(base, rng) for base in bases if len(base.split()) <= 10 and '"' not in base]
    if len(hard) < num_sentences:
        raise ValueError(f"Only {len(hard)} short base sentences for {num_sentences} hard sentences: pass more bases.")
    return hard[:num_sentences]


@cache
def _read(kind: str) -> tuple[str, ...]:
    text = resources.files("ardm_trl.data").joinpath("resources", _RESOURCE_FILES[kind]).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def load_sentences(kind: str = "all") -> list[str]:
    """Return the sentences that ship with ardm_trl.

    Args:
        kind (`str`, *optional*, defaults to `"all"`): `"normal"` (3,000 varied sentences of 4-16 words),
            `"hard"` (600 repetitive sentences, VGPO task B style) or `"all"` (normal then hard).

    Returns:
        `list[str]`: the sentences, in a fixed order.
    """
    if kind == "all":
        return list(_read("normal")) + list(_read("hard"))
    if kind not in _RESOURCE_FILES:
        raise ValueError(f"`kind` must be 'all', 'normal' or 'hard', got {kind!r}.")
    return list(_read(kind))


def _write_resources(num_normal: int = 3000, num_hard: int = 600, seed: int = 0) -> None:
    """Write the resource files; hard sentences come from extra sentences that are not in the normal list."""
    sentences = generate_sentences(num_normal + 3 * num_hard, seed=seed)
    normal = sentences[:num_normal]
    hard = _generate_hard_sentences(sentences[num_normal:], num_hard, seed=seed)
    folder = resources.files("ardm_trl.data").joinpath("resources")
    for kind, lines in (("normal", normal), ("hard", hard)):
        with open(str(folder.joinpath(_RESOURCE_FILES[kind])), "w", encoding="utf-8") as file:
            file.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    _write_resources()
