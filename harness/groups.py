"""Intersectional groups: one combined attribute made from several, for scenarios and metrics.

`with_intersection(images, ["skin_tone", "sex"])` adds the attribute "skin_tone*sex" whose
vocabulary is every combination ("light|female", ...); a sample with any part unknown is unknown.
"""
from __future__ import annotations

import itertools

import numpy as np

from harness.data import DataError, ImageSet

SEPARATOR = "|"


def intersection_name(attributes: list[str]) -> str:
    return "*".join(attributes)


def with_intersection(images: ImageSet, attributes: list[str]) -> ImageSet:
    """A copy of `images` with the combined attribute of `attributes` added (codes in row-major order)."""
    if len(attributes) < 2:
        raise DataError(f"an intersection needs at least two attributes, got {attributes}")
    parts = [images.group_codes(a) for a in attributes]  # raises, naming the set's attributes, if one is unknown
    vocabs = [images.attribute_vocab[a] for a in attributes]
    codes = np.zeros(len(images), dtype=np.int64)
    unknown = np.zeros(len(images), dtype=bool)
    for part, vocab in zip(parts, vocabs):
        codes = codes * len(vocab) + np.maximum(part, 0)
        unknown |= part < 0
    combined = images.subset(np.arange(len(images)))
    name = intersection_name(attributes)
    combined.attributes[name] = np.where(unknown, -1, codes)
    combined.attribute_vocab[name] = [SEPARATOR.join(values) for values in itertools.product(*vocabs)]
    return combined
