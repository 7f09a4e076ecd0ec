"""What posts say: the text bank of one hashtag (the parts of ``texts.toml``, expanded and
rendered) and the parts each post's own text is composed of."""

from __future__ import annotations

import functools
import itertools
import tomllib
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flows.schema import SENTIMENT_LABELS
from flows.sources.sample.kinds import MIN_GAP, earlier_original, kinds
from flows.sources.sample.people import LANGS, author_of, authors, language_of
from flows.sources.sample.rng import (
    GAMMA,
    S_BODY,
    S_CC,
    S_COUNTS,
    S_LIKES,
    S_LINK,
    S_LONG,
    S_REPLY,
    S_REPLY_TARGET,
    S_SENTIMENT,
    S_TAIL,
    S_THEME,
    Categorical,
    hash_bits,
    mix,
    pick,
    unit,
)
from flows.sources.sample.timeline import Plan

_TEXTS = tomllib.loads(resources.files(__package__).joinpath("texts.toml").read_text("utf-8"))
_THEMES = _TEXTS["themes"]
_THEME_NAMES = tuple(theme["name"] for theme in _THEMES)
_SLOTS = {"{" + slot["name"] + "}": slot["values"] for slot in _TEXTS["slots"]}
_LINKS = _TEXTS["links"]
# fmt: off
_TOPIC_WEIGHTS = np.array([0.34, 0.14, 0.13, 0.08, 0.11, 0.04, 0.03, 0.025, 0.025, 0.025,
                           0.025, 0.025])  # the first 12 themes, the topics of English posts
_TOPIC = Categorical(_TOPIC_WEIGHTS)
_OUTAGE_THEME, _CONFERENCE_THEME = _THEME_NAMES.index("outage"), _THEME_NAMES.index("conference")
_LAUNCH_THEME = _THEME_NAMES.index("launch")
_LANG_THEME = np.array([-1] + [_THEME_NAMES.index(lang) for lang in LANGS[1:]])
# (negative, neutral) sentiment probabilities by theme; positive is the rest
_SENTIMENT = {"news_&_social_concern": (0.4, 0.45), "learning_&_educational": (0.12, 0.45),
              "music": (0.1, 0.3), "outage": (0.68, 0.24), "conference": (0.08, 0.25),
              "launch": (0.12, 0.45)}
# fmt: on
_SENTIMENT_CDF = np.array([np.cumsum(_SENTIMENT.get(theme, (0.22, 0.4))) for theme in _THEME_NAMES])
_P_OPENER = 0.45
_P_LINK = 0.18
_P_CC = 0.08
_P_REPLY = 0.175  # of original posts, so ~15% of rows
_NUMBERS = range(2, 40)  # what {n} becomes
_LONG_CHARS = 1000


@dataclass(frozen=True)
class Bank:
    """Text parts for one hashtag; index 0 of each part array is "" (no such part)."""

    openers: pa.Array
    opener_start: np.ndarray  # by sentiment
    opener_count: np.ndarray
    bodies: pa.Array  # every body template with every number it can take
    template_start: np.ndarray  # by theme * 3 + sentiment: the group's first template
    template_count: np.ndarray
    template_first: np.ndarray  # by template: its first body in `bodies`
    template_variants: np.ndarray  # by template: how many numbers it takes (1 if none)
    long_pool: np.ndarray  # English topic body templates for long posts, by sentiment:
    long_start: np.ndarray  # where each sentiment's starts in `long_pool`
    long_size: np.ndarray
    long_parts: int  # bodies in a long post, enough for _LONG_CHARS
    tails: pa.Array
    tail_tags: pa.Array  # list<string>, lower case, in text order
    tail_start: np.ndarray  # by theme
    tail_count: np.ndarray
    links: pa.Array  # " https://..."
    link_urls: pa.Array  # the URL alone, by the same index
    langs: pa.Array


def _expand(template: str) -> list[str]:
    template = template.strip()
    slots = [slot for slot in _SLOTS if slot in template]
    texts = []
    for values in itertools.product(*(_SLOTS[slot] for slot in slots)):
        text = template.replace("{event}", _TEXTS["event"])
        for slot, value in zip(slots, values, strict=True):
            text = text.replace(slot, value)
        texts.append(text)
    return texts


def _groups(groups: list[list[str]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Flatten groups behind a leading "": (items, start of each group, size of each group)."""
    sizes = np.array([len(group) for group in groups])
    starts = 1 + np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return [""] + [item for group in groups for item in group], starts, sizes


@functools.lru_cache(maxsize=8)
def text_bank(tag: str) -> Bank:
    """The parts of posts following `tag` (`tag` is never one of a tail's extra hashtags)."""
    openers, opener_start, opener_count = _groups(
        [_TEXTS["openers"][label] for label in SENTIMENT_LABELS]
    )
    templates, template_start, template_count = _groups(
        [
            [text for line in theme[label].splitlines() if line.strip() for text in _expand(line)]
            for theme in _THEMES
            for label in SENTIMENT_LABELS
        ]
    )
    # Numbers are rendered here, once, so that a post's body is one `take`.
    variants = [
        [t.replace("{n}", str(n)) for n in _NUMBERS] if "{n}" in t else [t] for t in templates
    ]
    template_variants = np.array([len(v) for v in variants])
    topics = len(_TOPIC_WEIGHTS)
    long_pools = [  # the longer bodies: fewer of them make a long post, so it repeats less
        np.array(
            [
                b
                for g in range(s, topics * 3, 3)
                for b in range(template_start[g], template_start[g] + template_count[g])
                if len(templates[b]) >= 80
            ]
        )
        for s in range(3)
    ]
    long_size = np.array([pool.size for pool in long_pools])
    shortest = min(len(text) for pool in long_pools for b in pool for text in variants[b])

    tails: list[list[str]] = []
    tag_lists: list[list[str]] = [[]]  # "" first, as in every part array
    for k, theme in enumerate(_THEMES):
        extra = [t for t in theme["tags"] if t != tag.lower()]
        if k < topics:
            extra += [t for t in _TEXTS["generic_tags"] if t != tag.lower()]
        combos = [()] + [(t,) for t in extra] + list(itertools.combinations(extra[:6], 2))
        orders = [(tag, *combo) for combo in combos] + [(*combo, tag) for combo in combos[1:]]
        tails.append([])
        for tags, emoji in itertools.product(orders, _TEXTS["tail_emoji"]):
            tails[-1].append(" " + " ".join("#" + t for t in tags) + emoji)
            tag_lists.append([t.lower() for t in tags])
    tail_texts, tail_start, tail_count = _groups(tails)

    return Bank(
        openers=pa.array(openers),
        opener_start=opener_start,
        opener_count=opener_count,
        bodies=pa.array([text for v in variants for text in v]),
        template_start=template_start,
        template_count=template_count,
        template_first=np.concatenate([[0], np.cumsum(template_variants)[:-1]]),
        template_variants=template_variants,
        long_pool=np.concatenate(long_pools),
        long_start=np.concatenate([[0], np.cumsum(long_size)[:-1]]),
        long_size=long_size,
        long_parts=-(-(_LONG_CHARS + 1) // (shortest + 1)),
        tails=pa.array(tail_texts),
        tail_tags=pa.array(tag_lists, pa.list_(pa.string())),
        tail_start=tail_start,
        tail_count=tail_count,
        links=pa.array([""] + [" " + link for link in _LINKS]),
        link_urls=pa.array([""] + list(_LINKS)),
        langs=pa.array(LANGS),
    )


# --- composing a post's own text --------------------------------------------------------------


@dataclass(frozen=True)
class Parts:
    """Per row, indices into the bank (0 = none) and authors (-1 = none) of a post's own text."""

    lang: np.ndarray
    reply_to: np.ndarray  # index of the post replied to, -1 if none
    reply_author: np.ndarray
    cc_author: np.ndarray
    opener: np.ndarray
    bodies: pa.Array  # the bank's bodies, then the long posts' bodies
    body: np.ndarray  # index into `bodies`
    link: np.ndarray
    tail: np.ndarray
    likes: np.ndarray
    reposts: np.ndarray
    replies: np.ndarray
    quotes: np.ndarray


def compose(
    idx: np.ndarray, day: np.ndarray, author: np.ndarray, plan: Plan, bank: Bank, seed: int
) -> Parts:
    """The parts of the own text of original posts `idx`, written on `day` by `author`."""
    _, _, empty, long = kinds(idx, seed)
    full = ~empty
    lang = np.where(empty, 0, language_of(idx, seed))
    english = lang == 0
    long &= english

    bits = hash_bits(idx, seed, S_THEME)
    event = unit(bits)
    theme = _TOPIC(pick(bits) * 2.0**-31)
    theme[event < plan.outage[day]] = _OUTAGE_THEME
    theme[event >= 1 - plan.conference[day]] = _CONFERENCE_THEME
    theme[np.abs(event - 0.5) < plan.launch[day] / 2] = _LAUNCH_THEME  # days apart from both
    theme = np.where(english, theme, _LANG_THEME[lang])
    bits = hash_bits(idx, seed, S_SENTIMENT)
    sentiment = (unit(bits)[:, None] >= _SENTIMENT_CDF[theme]).sum(1)
    opener = bank.opener_start[sentiment] + pick(bits) % bank.opener_count[sentiment]

    group = theme * 3 + sentiment
    bits = hash_bits(idx, seed, S_BODY)
    template = bank.template_start[group] + pick(bits) % bank.template_count[group]
    body = _render(template, bits, bank)
    body[empty] = 0
    bits = hash_bits(idx, seed, S_TAIL)
    tail = bank.tail_start[theme] + pick(bits) % bank.tail_count[theme]
    tail[empty] = 0
    opener[~(full & english) | (unit(bits) >= _P_OPENER)] = 0
    bits = hash_bits(idx, seed, S_LINK)
    link = np.where(full & (unit(bits) < _P_LINK), 1 + pick(bits) % len(_LINKS), 0)

    people = authors()
    bits = hash_bits(idx, seed, S_CC)
    cc = full & english & ~long & (unit(bits) < _P_CC)
    cc_author = np.where(cc, people.rank_en(pick(bits) * 2.0**-31), -1)

    reply = full & (idx >= MIN_GAP) & (unit(hash_bits(idx, seed, S_REPLY)) < _P_REPLY)
    reply_to = np.full(idx.size, -1, dtype=np.int64)
    reply_to[reply] = earlier_original(idx[reply], seed, S_REPLY_TARGET, plan.lookback)
    reply_author = np.full(idx.size, -1, dtype=np.int64)
    reply_author[reply] = author_of(reply_to[reply], seed)

    heavy = (1.0 - unit(hash_bits(idx, seed, S_LIKES))) ** (-1 / 1.4) - 1  # Pareto: a few go viral
    likes = (2.5 * people.popularity[author] * heavy).astype(np.int64)
    bits = hash_bits(idx, seed, S_COUNTS)
    u, v = unit(bits), pick(bits) * 2.0**-31
    reposts = (likes * 0.3 * u * u).astype(np.int64)
    replies = (likes * 0.2 * v + (theme == _OUTAGE_THEME) * 3 * v).astype(np.int64)

    body[long] = len(bank.bodies) + np.arange(np.count_nonzero(long))
    long_bodies = _long_bodies(idx[long], sentiment[long], bank, seed)
    return Parts(
        lang=lang,
        reply_to=reply_to,
        reply_author=reply_author,
        cc_author=cc_author,
        opener=opener,
        body=body,
        bodies=pa.concat_arrays([bank.bodies, long_bodies]),
        link=link,
        tail=tail,
        likes=likes,
        reposts=reposts,
        replies=replies,
        quotes=(reposts * 0.3 * v).astype(np.int64),
    )


def _render(template: np.ndarray, bits: np.ndarray, bank: Bank) -> np.ndarray:
    """Index in `bank.bodies` of each body template with a number drawn from `unit(bits)`."""
    variant = (unit(bits) * bank.template_variants[template]).astype(np.int64)
    return bank.template_first[template] + variant


def _long_bodies(idx: np.ndarray, sentiment: np.ndarray, bank: Bank, seed: int) -> pa.Array:
    """Rants and threads: many English bodies of the same sentiment, one after another."""
    parts = np.arange(1, bank.long_parts + 1, dtype=np.uint64) * GAMMA  # wraps, as it should
    bits = mix(hash_bits(idx, seed, S_LONG)[:, None] + parts)  # a row of bits per post
    sentiment = sentiment[:, None]
    template = bank.long_pool[bank.long_start[sentiment] + pick(bits) % bank.long_size[sentiment]]
    bodies = bank.bodies.take(_render(template, bits, bank).ravel())
    offsets = np.arange(idx.size + 1, dtype=np.int32) * bank.long_parts
    return pc.binary_join(pa.ListArray.from_arrays(offsets, bodies), " ")
