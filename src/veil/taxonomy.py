"""Unsafe-content categories, their definitions, label mappings and moderator questions.

Two taxonomies are provided:

* ``"paper"`` — the three categories of the Conditional-VLM safeguarding
  paper: sexually explicit content, cyberbullying and self-harm;
* ``"unsafebench"`` — UnsafeBench's eleven: hate, harassment, violence,
  self-harm, sexual, shocking, illegal activity, deception, political,
  public and personal health, spam.

Every category is registered once in :data:`CATEGORIES` under a snake_case
key (``"sexual"`` serves both the paper's "sexually explicit" and
UnsafeBench's "sexual"). Definitions are our own wording; they are used in
conditioned prompts and in grounded rationales.

Classifier labels map to categories in this order: a model card's
``"categories"`` mapping, NudeNet's exposed-body-part labels, then a label
whose name matches a category key or alias (``"porn"`` → ``"sexual"``).
Unsafe labels that match nothing fall into the generic :data:`GENERIC`
category (``"unsafe"``), which no taxonomy lists and which a rationale never
names beyond "could be unsafe for viewing".

Examples
--------
>>> get_category("self-harm").key
'self_harm'
>>> category_for_label("FEMALE_BREAST_EXPOSED")
'sexual'
>>> questions_for("sexual")[0]
'Does the image contain any sexual content or nudity?'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from veil.errors import InvalidParameterError, UnknownNameError
from veil.registry import Registry

__all__ = [
    "CATEGORIES",
    "GENERAL_QUESTIONS",
    "GENERIC",
    "NUDENET_ATTRIBUTES",
    "NUDENET_LABELS",
    "NUDENET_SEXUAL",
    "SAFE_LABELS",
    "TAXONOMIES",
    "Category",
    "attribute_name",
    "category_for_label",
    "category_for_question",
    "get_category",
    "is_safe_label",
    "label_categories",
    "normalize_category",
    "questions_for",
    "taxonomy",
]


@dataclass(frozen=True)
class Category:
    """One kind of unsafe content.

    Attributes
    ----------
    key : str
        Snake_case registry key (``"self_harm"``).
    title : str
        Noun phrase used in sentences ("self-harm").
    definition : str
        One-sentence definition used in prompts and rationales.
    questions : tuple of str
        Curated moderator questions that probe this category.
    aliases : tuple of str
        Other names (normalized) that resolve to this category.
    keywords : tuple of str
        Words that route a free-form question to this category.
    """

    key: str
    title: str
    definition: str
    questions: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "title": self.title,
            "definition": self.definition,
            "questions": list(self.questions),
        }


#: key → :class:`Category`; the single source of truth for category names.
CATEGORIES: Registry[Category] = Registry("category")

_DEFS = [
    Category(
        "sexual",
        "sexually explicit content",
        "nudity with exposed genitals, breasts or buttocks, sexual acts, or imagery whose "
        "evident purpose is sexual arousal",
        (
            "Does the image contain any sexual content or nudity?",
            "Are any intimate body parts exposed in the image?",
            "Is anyone in the image engaged in sexual activity?",
        ),
        aliases=("sexually_explicit", "sexual_content", "nudity", "nude", "nsfw", "porn",
                 "pornography", "explicit", "sexy", "hentai", "adult"),
        keywords=("sexual", "sex", "nud", "naked", "explicit", "intimate", "porn", "genital",
                  "breast", "buttock"),
    ),
    Category(
        "cyberbullying",
        "cyberbullying",
        "imagery that mocks, humiliates, threatens or intimidates a person, such as aggressive "
        "gestures aimed at the viewer or a victim being ridiculed",
        (
            "Is there any aggressive behavior shown in the image?",
            "Is anyone in the image being mocked, humiliated or threatened?",
            "Does the image show intimidating gestures such as a pointed gun or a raised fist?",
        ),
        aliases=("bullying", "cyber_bullying"),
        keywords=("aggressive", "aggression", "bully", "mock", "humiliat", "threat",
                  "intimidat", "gesture"),
    ),
    Category(
        "self_harm",
        "self-harm",
        "depictions or encouragement of a person injuring themselves, such as cutting, burns, "
        "suicide or the tools and wounds associated with it",
        (
            "Are there any depictions of self-harm in the image?",
            "Does the image show wounds, scars or blood from self-injury?",
            "Does the image show anything related to suicide?",
        ),
        aliases=("selfharm", "self_injury", "suicide"),
        keywords=("self-harm", "self harm", "self-injur", "suicid", "cutting", "scar", "wound"),
    ),
    Category(
        "hate",
        "hateful content",
        "symbols, slogans or caricatures that demean people for their race, religion, "
        "ethnicity, gender, sexual orientation or disability",
        (
            "Does the image contain hateful symbols or slogans?",
            "Does the image demean a group of people?",
        ),
        aliases=("hateful", "hate_speech", "hate_symbol"),
        keywords=("hate", "hateful", "racis", "slur", "swastika", "demean", "symbol"),
    ),
    Category(
        "harassment",
        "harassment",
        "content targeting a specific person with insults, threats, stalking or unwanted "
        "attention",
        (
            "Is a specific person being insulted, threatened or harassed in the image?",
        ),
        aliases=("harass",),
        keywords=("harass", "insult", "stalk"),
    ),
    Category(
        "violence",
        "violence",
        "people or animals being attacked, fighting, or threatened with weapons, and the "
        "injuries that result",
        (
            "Is there any violence or fighting in the image?",
            "Are weapons being used against someone in the image?",
        ),
        aliases=("violent", "gore", "weapon", "weapons", "fight"),
        keywords=("violen", "fight", "weapon", "attack", "gun", "knife", "gore"),
    ),
    Category(
        "shocking",
        "shocking content",
        "gruesome or disturbing imagery such as corpses, mutilation, severe injury or "
        "horror that most viewers would find distressing",
        (
            "Does the image show gruesome or disturbing content?",
            "Are there corpses, severe injuries or mutilation in the image?",
        ),
        aliases=("disturbing", "gruesome", "horror"),
        keywords=("shock", "gruesome", "disturb", "corpse", "blood", "mutilat"),
    ),
    Category(
        "illegal_activity",
        "illegal activity",
        "depictions of crimes in progress or instructions for them, such as drug use or "
        "dealing, theft, vandalism or trafficking",
        (
            "Does the image show illegal activity such as drug use or theft?",
        ),
        aliases=("illegal", "drugs", "crime"),
        keywords=("illegal", "drug", "crime", "theft", "steal", "vandal"),
    ),
    Category(
        "deception",
        "deceptive content",
        "imagery designed to mislead, such as fabricated evidence, scams, impersonation or "
        "manipulated photos presented as real",
        (
            "Is the image designed to deceive or scam the viewer?",
        ),
        aliases=("deceptive", "misinformation", "scam", "fake"),
        keywords=("decept", "deceiv", "scam", "fake", "mislead", "fraud"),
    ),
    Category(
        "political",
        "political content",
        "propaganda, extremist messaging or manipulative imagery about politicians, "
        "elections or political conflicts",
        (
            "Does the image contain political propaganda or extremist messaging?",
        ),
        aliases=("politics", "propaganda", "extremism"),
        keywords=("politic", "propaganda", "election", "extremis"),
    ),
    Category(
        "health",
        "public and personal health content",
        "content that endangers health, such as promoting eating disorders, dangerous "
        "challenges, medical misinformation or unsafe substance use",
        (
            "Does the image promote behaviour that endangers health?",
        ),
        aliases=("public_and_personal_health", "public_health", "personal_health",
                 "medical", "eating_disorder"),
        keywords=("health", "medical", "eating disorder", "anorexi", "diet"),
    ),
    Category(
        "spam",
        "spam",
        "unsolicited advertising, clickbait or repetitive promotional imagery with "
        "little content of its own",
        (
            "Is the image spam or unsolicited advertising?",
        ),
        aliases=("advert", "advertising", "clickbait"),
        keywords=("spam", "advert", "clickbait", "promot"),
    ),
]

#: The category unmapped unsafe labels fall into; never named in rationales.
GENERIC = Category(
    "unsafe",
    "unsafe content",
    "content a classifier flagged as unsuitable for general viewing",
    ("Is the image safe for general viewing?",),
    aliases=("nsfw_generic",),
)

for _c in [*_DEFS, GENERIC]:
    CATEGORIES.register(_c.key, _c)

#: Taxonomy name → category keys, in their canonical order.
TAXONOMIES: dict[str, tuple[str, ...]] = {
    "paper": ("sexual", "cyberbullying", "self_harm"),
    "unsafebench": (
        "hate",
        "harassment",
        "violence",
        "self_harm",
        "sexual",
        "shocking",
        "illegal_activity",
        "deception",
        "political",
        "health",
        "spam",
    ),
}

#: Open questions the paper's moderators asked of every image.
GENERAL_QUESTIONS: tuple[str, ...] = (
    "What is happening in the image?",
    "What are the people doing?",
)

#: NudeNet (v3) label → human-readable attribute name, in the order of the network's outputs.
#: The one NudeNet table: :mod:`veil.classify.nudenet` reads its labels and default unsafe
#: labels from here (the taxonomy sits below the classifiers, so the table lives down here).
NUDENET_ATTRIBUTES: dict[str, str] = {
    "FEMALE_GENITALIA_COVERED": "covered female genitalia",
    "FACE_FEMALE": "female face",
    "BUTTOCKS_EXPOSED": "exposed buttocks",
    "FEMALE_BREAST_EXPOSED": "exposed female breast",
    "FEMALE_GENITALIA_EXPOSED": "exposed female genitalia",
    "MALE_BREAST_EXPOSED": "exposed male chest",
    "ANUS_EXPOSED": "exposed anus",
    "FEET_EXPOSED": "exposed feet",
    "BELLY_COVERED": "covered belly",
    "FEET_COVERED": "covered feet",
    "ARMPITS_COVERED": "covered armpits",
    "ARMPITS_EXPOSED": "exposed armpits",
    "FACE_MALE": "male face",
    "BELLY_EXPOSED": "exposed belly",
    "MALE_GENITALIA_EXPOSED": "exposed male genitalia",
    "ANUS_COVERED": "covered anus",
    "FEMALE_BREAST_COVERED": "covered female breast",
    "BUTTOCKS_COVERED": "covered buttocks",
}

#: NudeNet's 18 labels, in the order of the network's class outputs.
NUDENET_LABELS: tuple[str, ...] = tuple(NUDENET_ATTRIBUTES)

#: NudeNet's exposed intimate body parts: the labels that make an image unsafe by default and
#: the only ones that map to ``"sexual"``.
NUDENET_SEXUAL: tuple[str, ...] = (
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "BUTTOCKS_EXPOSED",
    "ANUS_EXPOSED",
)

#: The one list of label names that mean "nothing unsafe here": classifier labels
#: (:func:`category_for_label`), dataset folders and labels (:mod:`veil.bench.datasets`) and
#: training classes (:func:`is_safe_label` with ``prefix=True``, as ``veil train`` uses it).
SAFE_LABELS: frozenset[str] = frozenset({"safe", "neutral", "normal", "drawings", "drawing", "benign", "sfw",
                                         "none", "negative", "other", "clean"})


def normalize_category(name: str) -> str:
    """Lower-case ``name`` and turn spaces and hyphens into underscores.

    >>> normalize_category("Public and Personal-Health")
    'public_and_personal_health'
    """
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def is_safe_label(name: str, *, prefix: bool = False) -> bool:
    """Whether the label ``name`` means "nothing unsafe here" (:data:`SAFE_LABELS`).

    With ``prefix=True`` the first word decides (``"safe_for_work"``, ``"normal scene"``), as
    training classes are often named.

    Examples
    --------
    >>> is_safe_label("Neutral"), is_safe_label("nsfw"), is_safe_label("safe_for_work", prefix=True)
    (True, False, True)
    """
    norm = normalize_category(name)
    if prefix:
        first = re.match(r"[a-z]+", norm)
        return first is not None and first.group() in SAFE_LABELS
    return norm in SAFE_LABELS


def _lookup(name: str) -> Category | None:
    norm = normalize_category(name)
    if norm in CATEGORIES:
        return CATEGORIES.get(norm)
    for key in CATEGORIES:
        cat = CATEGORIES.get(key)
        if norm in cat.aliases or norm == normalize_category(cat.title):
            return cat
    return None


def get_category(name: str) -> Category:
    """The :class:`Category` for a key, title or alias.

    Raises
    ------
    UnknownNameError
        If ``name`` matches no category; the message lists the valid keys.

    Examples
    --------
    >>> get_category("Sexually explicit").key
    'sexual'
    """
    cat = _lookup(name)
    if cat is None:
        valid = ", ".join(CATEGORIES.names())
        raise UnknownNameError(f"unknown category {name!r}; valid names: {valid}")
    return cat


def taxonomy(name: str = "paper") -> tuple[Category, ...]:
    """The categories of a named taxonomy (``"paper"`` or ``"unsafebench"``).

    >>> [c.key for c in taxonomy("paper")]
    ['sexual', 'cyberbullying', 'self_harm']
    """
    if name not in TAXONOMIES:
        raise UnknownNameError(
            f"unknown taxonomy {name!r}; valid names: {', '.join(sorted(TAXONOMIES))}"
        )
    return tuple(CATEGORIES.get(k) for k in TAXONOMIES[name])


def category_for_label(
    label: str, card_categories: Mapping[str, str] | None = None
) -> str | None:
    """The category key a classifier label maps to, or ``None`` for safe/unknown labels.

    Parameters
    ----------
    label : str
        A classifier output label or detection label.
    card_categories : mapping, optional
        The model card's ``"categories"`` ``{label: category}``; wins over built-in rules.

    Raises
    ------
    UnknownNameError
        If ``card_categories`` maps ``label`` to an unknown category.

    Examples
    --------
    >>> category_for_label("porn"), category_for_label("neutral")
    ('sexual', None)
    >>> category_for_label("cls_3", {"cls_3": "self-harm"})
    'self_harm'
    """
    if card_categories and label in card_categories:
        target = card_categories[label]
        if target is None or normalize_category(str(target)) in SAFE_LABELS:
            return None
        return get_category(str(target)).key
    if label in NUDENET_ATTRIBUTES:
        return "sexual" if label in NUDENET_SEXUAL else None
    norm = normalize_category(label)
    if norm in SAFE_LABELS:
        return None
    cat = _lookup(norm)
    if cat is not None and cat is not GENERIC:
        return cat.key
    return None


def label_categories(
    labels: Iterable[str],
    unsafe_labels: Iterable[str] = (),
    card_categories: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """``{label: category}`` for every label that maps to a category.

    Unsafe labels with no category of their own map to ``"unsafe"``
    (:data:`GENERIC`); safe labels are left out.

    Examples
    --------
    >>> label_categories(["safe", "nsfw_score"], ["nsfw_score"])
    {'nsfw_score': 'unsafe'}
    """
    unsafe = set(unsafe_labels)
    out: dict[str, str] = {}
    for label in labels:
        cat = category_for_label(label, card_categories)
        if cat is None and label in unsafe and not (
            card_categories and label in card_categories
        ):
            cat = GENERIC.key
        if cat is not None:
            out[label] = cat
    return out


def attribute_name(label: str) -> str:
    """A readable name for a label (``"FEMALE_BREAST_EXPOSED"`` → ``"exposed female breast"``).

    >>> attribute_name("self_harm_cut")
    'self harm cut'
    """
    if label in NUDENET_ATTRIBUTES:
        return NUDENET_ATTRIBUTES[label]
    return re.sub(r"[_\-]+", " ", label).strip().lower()


def questions_for(category: str) -> tuple[str, ...]:
    """The curated moderator questions for a category (key, title or alias)."""
    return get_category(category).questions


def category_for_question(question: str) -> str | None:
    """The category a free-form moderator question asks about, or ``None`` for open questions.

    Curated questions map to their own category; others are routed by keywords.

    Examples
    --------
    >>> category_for_question("Are there any depictions of self-harm in the image?")
    'self_harm'
    >>> category_for_question("What is happening in the image?") is None
    True
    """
    if not isinstance(question, str) or not question.strip():
        raise InvalidParameterError(f"question must be a non-empty string, got {question!r}")
    for key in CATEGORIES:
        if question in CATEGORIES.get(key).questions and key != GENERIC.key:
            return key
    q = question.lower()
    best: tuple[int, str] | None = None
    for key in CATEGORIES:
        cat = CATEGORIES.get(key)
        hits = sum(1 for kw in cat.keywords if kw in q)
        if hits and (best is None or hits > best[0]):
            best = (hits, key)
    return best[1] if best else None
