"""The sentence bank of the synthetic corpus: templates and word lists written for this project
(no third-party text), filled at random into distinct English sentences."""

from __future__ import annotations

import itertools

import numpy as np

_NAMES = ("Anna", "Ben", "Clara", "David", "Emma", "Felix", "Grace", "Hugo", "Iris", "Jack", "Kate",
          "Leo", "Maya", "Noah", "Olivia", "Peter", "Quinn", "Rosa", "Sam", "Tara", "Victor", "Wendy")
_NOUNS = ("garden", "window", "bicycle", "teacher", "kitchen", "mountain", "river", "letter",
          "computer", "umbrella", "village", "doctor", "market", "bridge", "orange", "camera",
          "painting", "blanket", "holiday", "library", "engine", "festival", "puzzle", "forest",
          "museum", "pocket", "harbour", "violin", "sandwich", "rocket", "island", "ladder",
          "meeting", "theatre", "morning", "basket", "yellow boat", "paper map", "old clock",
          "blue jacket", "wooden table", "small dog", "big window", "fresh bread", "new phone")
_ADJECTIVES = ("quiet", "bright", "heavy", "strange", "wonderful", "cheap", "broken", "famous",
               "careful", "busy", "lovely", "enormous", "simple", "boring", "cold", "warm", "sharp",
               "gentle", "modern", "ancient", "purple", "smooth", "noisy", "perfect")
_VERBS_PAST = ("found", "painted", "bought", "opened", "cleaned", "borrowed", "moved", "fixed",
               "sold", "watched", "carried", "visited", "described", "dropped", "measured", "shared")
_VERBS = ("find", "paint", "buy", "open", "clean", "borrow", "move", "fix", "sell", "watch",
          "carry", "visit", "describe", "drop", "measure", "share")
_PLACES = ("near the station", "behind the school", "in the park", "on the roof", "by the sea",
           "at the top of the hill", "under the bridge", "in the old town", "next to the bakery",
           "across the street", "in the back garden", "at the airport")
_TIMES = ("Yesterday", "Last week", "This morning", "On Sunday", "Every summer", "Tomorrow",
          "Later tonight", "In March", "After lunch", "Before breakfast", "Next year")
_ADVERBS = ("slowly", "quickly", "happily", "carefully", "suddenly", "quietly", "proudly", "easily")
_FEELINGS = ("happy", "surprised", "tired", "excited", "worried", "curious", "pleased", "amazed")

_TEMPLATES = (
    "{name} {verb_past} the {adj} {noun} {place}.",
    "{time}, {name} {verb_past} a {noun} {place}.",
    "Did you {verb} the {noun} {place}?",
    "I think the {noun} is {adj}, but {name} does not agree.",
    "We will {verb} the {adj} {noun} {time_lower}.",
    "Why did {name} {verb} the {noun} so {adverb}?",
    "There are {number} {adj} things {place}.",
    "{name} was {feeling} when the {noun} arrived {adverb}.",
    "Please {verb} the {noun} before {name} comes home.",
    "It took {number} minutes to {verb} the {adj} {noun}.",
    "My {noun} is {adj}, and your {noun2} is {adj2}.",
    "Have you ever seen a {adj} {noun} {place}?",
    "{name} and {name2} {verb_past} the {noun} together.",
    "The {noun} costs {number} pounds, which is rather {adj}.",
    "Oh no, I {verb_past} the {noun} again!",
    "If the weather is {adj}, we can {verb} the {noun} {place}.",
    "Nobody knows who {verb_past} the {adj} {noun}.",
    "{time}, the {noun} looked {adj} and {adj2}.",
    "Could you tell {name} that the {noun} is {place}?",
    "What a {adj} {noun}! {name} will be {feeling}.",
    "The {adj} {noun} was {verb_past} {adverb} by {name}.",
    "Honestly, I never expected the {noun} to be so {adj}.",
    "Room {number} has a {adj} {noun} and a {noun2}.",
    "{name} said, {quote}",
)


def _fill(template: str, rng: np.random.Generator) -> str:
    pick = lambda xs: xs[rng.integers(len(xs))]  # noqa: E731
    adj, adj2 = rng.choice(_ADJECTIVES, 2, replace=False)
    noun, noun2 = rng.choice(_NOUNS, 2, replace=False)
    name, name2 = rng.choice(_NAMES, 2, replace=False)
    quote = f"the {pick(_NOUNS)} is {pick(_ADJECTIVES)}."
    text = template.format(
        name=name, name2=name2, noun=noun, noun2=noun2, adj=adj, adj2=adj2, place=pick(_PLACES),
        verb=pick(_VERBS), verb_past=pick(_VERBS_PAST), time=pick(_TIMES),
        time_lower=pick(_TIMES).lower(), adverb=pick(_ADVERBS), feeling=pick(_FEELINGS),
        number=int(rng.integers(2, 200)), quote=quote)
    return text[0].upper() + text[1:]


def sentence_bank(count: int, seed: int = 0) -> tuple[str, ...]:
    """``count`` distinct sentences from the templates and word lists above (written for this
    project; no third-party text)."""
    rng = np.random.default_rng(seed)
    seen: dict[str, None] = {}
    for attempt in itertools.count():
        if len(seen) >= count:
            break
        if attempt > 50 * count:
            raise ValueError(f"cannot make {count} distinct sentences from the templates; ask fewer")
        seen.setdefault(_fill(_TEMPLATES[attempt % len(_TEMPLATES)], rng), None)
    return tuple(seen)
