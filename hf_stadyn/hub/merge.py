"""Merge our card into a repo's existing README.md: the user's text and metadata survive, ours is updated.

Rules (docs/hub.md):

* Body: the block between :data:`~hf_stadyn.hub.sections.CARD_BEGIN` and ``CARD_END`` is replaced by ours; a
  README without the markers keeps all its text and gets our block appended after it.
* Metadata (YAML front matter): keys we set replace the user's (``model-index`` included, as it holds our
  readings); list keys that name things (``tags``, ``datasets``, ``metrics``) are the union, the user's first;
  every other key of the user's stays as it is.
"""

from __future__ import annotations

from typing import Any

import yaml

from .sections import CARD_BEGIN, CARD_END

__all__ = ["has_markers", "merge_card", "split_front_matter", "wrap_in_markers"]

_UNION_KEYS = ("tags", "datasets", "metrics")


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """``(metadata, body)`` of a card; no front matter gives ``({}, text)``.

    Raises:
        ValueError: the front matter is not a YAML mapping (one line).
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.startswith("---"):
        return {}, text
    lines = text.split("\n")
    for i in range(1, len(lines)):
        if lines[i].rstrip() == "---":
            head, body = "\n".join(lines[1:i]), "\n".join(lines[i + 1 :])
            try:
                meta = yaml.safe_load(head) if head.strip() else {}
            except yaml.YAMLError as e:
                first = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise ValueError(f"the card's front matter is not valid YAML ({first}); fix the README.md") from None
            if meta is None:
                meta = {}
            if not isinstance(meta, dict):
                raise ValueError("the card's front matter is not a YAML mapping; fix the README.md")
            return meta, body.lstrip("\n")
    return {}, text


def has_markers(body: str) -> bool:
    return CARD_BEGIN in body and CARD_END in body and body.index(CARD_BEGIN) < body.index(CARD_END)


def wrap_in_markers(body: str) -> str:
    """``body`` inside our markers (unchanged when it has them already)."""
    if has_markers(body):
        return body
    return f"{CARD_BEGIN}\n{body.strip()}\n{CARD_END}\n"


def _join(meta: dict[str, Any], body: str) -> str:
    if not meta:
        return body
    head = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=120).rstrip("\n")
    return f"---\n{head}\n---\n\n{body}"


def merge_card(existing: str | None, ours: str) -> str:
    """The README to upload: ``ours`` merged into ``existing`` (None or empty: ``ours`` as it is).

    ``ours`` must hold our block between the markers (every card hf-stadyn writes does). When ``existing``
    is ours already (only our block), the result equals ``ours``, so a second publish changes nothing.
    """
    our_meta, our_body = split_front_matter(ours)
    if not has_markers(our_body):
        raise ValueError("our card has no hf-stadyn markers; build it with bias_model_card or wrap_in_markers")
    if not existing or not existing.strip():
        return ours
    meta, body = split_front_matter(existing)
    begin, end = our_body.index(CARD_BEGIN), our_body.index(CARD_END) + len(CARD_END)
    block = our_body[begin:end]
    if has_markers(body):
        b, e = body.index(CARD_BEGIN), body.index(CARD_END) + len(CARD_END)
        new_body = body[:b] + block + body[e:]
    else:
        new_body = body.rstrip("\n") + ("\n\n" if body.strip() else "") + block + "\n"
    merged = dict(meta)
    for key, value in our_meta.items():
        old = merged.get(key)
        if key in _UNION_KEYS and isinstance(old, list) and isinstance(value, list):
            merged[key] = list(dict.fromkeys([*old, *value]))
        elif key in _UNION_KEYS and isinstance(old, str) and isinstance(value, list):
            merged[key] = list(dict.fromkeys([old, *value]))
        else:
            merged[key] = value
    if merged == our_meta and new_body.strip() == our_body.strip():
        return ours
    return _join(merged, new_body)
