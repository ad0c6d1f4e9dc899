"""Merge our card into a repo's existing README.md: the user's text and metadata survive, ours is updated.

Rules (docs/hub.md):

* Body: the block between :data:`~hf_stadyn.hub.sections.CARD_BEGIN` and ``CARD_END`` is replaced by ours; a
  README without the markers keeps all its text and gets our block appended after it.
* Metadata (YAML front matter): a key the card has already keeps its value (the user's ``license``,
  ``base_model``, ``pipeline_tag``, ... win over our defaults); keys it lacks are added; list keys that name
  things (``tags``, ``datasets``, ``metrics``) are the union, the user's first; in ``model-index`` our results
  (``source.name`` is hf-stadyn's :data:`~hf_stadyn.hub.sections.SOURCE_NAME`) replace the previous ones of
  ours while the user's own results stay.
"""

from __future__ import annotations

from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML comes with huggingface_hub / datasets

from .sections import CARD_BEGIN, CARD_END, SOURCE_NAME

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
        if key == "model-index":
            merged[key] = _merge_model_index(old, value)
        elif key in _UNION_KEYS and isinstance(value, list) and isinstance(old, (list, str)):
            merged[key] = list(dict.fromkeys([*([old] if isinstance(old, str) else old), *value]))
        elif old is None or old == "" or old == []:
            merged[key] = value
    if merged == our_meta and new_body.strip() == our_body.strip():
        return ours
    return _join(merged, new_body)


def _ours(result: Any) -> bool:
    return isinstance(result, dict) and (result.get("source") or {}).get("name") == SOURCE_NAME


def _merge_model_index(old: Any, new: Any) -> Any:
    """The user's model-index results that are not ours, then ours; the entry keeps the user's name."""
    if not isinstance(old, list) or not old or not isinstance(old[0], dict):
        return new
    if not isinstance(new, list) or not new or not isinstance(new[0], dict):
        return old
    entry = dict(old[0])
    theirs = [r for r in entry.get("results") or [] if not _ours(r)]
    entry["results"] = theirs + list(new[0].get("results") or [])
    entry.setdefault("name", new[0].get("name"))
    return [entry, *old[1:]]
