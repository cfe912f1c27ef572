"""The data model every plugin speaks: image sets and splits.

An ImageSet is array-based: uint8 images (N, C, H, W), integer labels, a table of
categorical attribute codes with their vocabularies, a provenance column ("real" or a
generator id) and stable sample ids. It saves to a single .npz read with
allow_pickle=False, so nothing is ever unpickled.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

REAL = "real"


class DataError(ValueError):
    """Raised when an image set breaks the data contract; the message says what to fix."""


@dataclass
class ImageSet:
    """A set of images with labels, sensitive attributes, ids and provenance, row-aligned.
    Datasets return them in `Splits`; generators and classifiers receive them."""

    images: np.ndarray  # uint8 (N, C, H, W), C = 1 (grayscale) or 3 (RGB)
    labels: np.ndarray  # int64 (N,) class codes, or (N, L) multi-hot
    attributes: dict[str, np.ndarray]  # name -> int64 codes (N,); -1 = unknown
    label_names: list[str]  # class names; a label code indexes into it
    attribute_vocab: dict[str, list[str]]  # name -> the values its codes index into
    ids: np.ndarray  # str (N,), stable across runs
    provenance: np.ndarray = field(default=None)  # str (N,): "real" or generator id

    def __post_init__(self) -> None:
        if self.provenance is None:
            self.provenance = np.full(len(self.images), REAL)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.attributes = {k: np.asarray(v, dtype=np.int64) for k, v in self.attributes.items()}
        self.ids = np.asarray(self.ids).astype(str)
        self.provenance = np.asarray(self.provenance).astype(str)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        """The number of classes (K), from `label_names`."""
        return len(self.label_names)

    @property
    def multilabel(self) -> bool:
        """True when `labels` are multi-hot (N, L) rows."""
        return self.labels.ndim == 2

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def validate(self, where: str = "image set") -> "ImageSet":
        """Check the contract; raise DataError naming `where` and what is wrong."""
        n = len(self.images)
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise DataError(f"{where}: images must be uint8 (N, C, H, W), got {self.images.dtype} {self.images.shape}")
        if self.images.shape[1] not in (1, 3):
            raise DataError(f"{where}: images need 1 or 3 channels (N, C, H, W), got C={self.images.shape[1]}")
        if len(self.labels) != n or len(self.ids) != n or len(self.provenance) != n:
            raise DataError(
                f"{where}: {n} images but {len(self.labels)} labels, {len(self.ids)} ids, "
                f"{len(self.provenance)} provenance entries"
            )
        if self.multilabel and (self.labels.shape[1] != self.num_classes or not np.isin(self.labels, (0, 1)).all()):
            raise DataError(f"{where}: multi-hot labels must be 0/1 with one column per class ({self.num_classes}: "
                            f"{self.label_names}), got shape {self.labels.shape}")
        if n and not self.multilabel and (self.labels.min() < 0 or self.labels.max() >= self.num_classes):
            raise DataError(
                f"{where}: labels must be codes in 0..{self.num_classes - 1} ({self.label_names}), "
                f"got range {self.labels.min()}..{self.labels.max()}"
            )
        for name, codes in self.attributes.items():
            vocab = self.attribute_vocab.get(name)
            if vocab is None:
                raise DataError(f"{where}: attribute '{name}' has no vocabulary in attribute_vocab")
            if len(codes) != n:
                raise DataError(f"{where}: attribute '{name}' has {len(codes)} values for {n} images")
            if n and (codes.min() < -1 or codes.max() >= len(vocab)):
                raise DataError(f"{where}: attribute '{name}' codes must be -1 (unknown) or 0..{len(vocab) - 1}")
        if len(set(self.ids.tolist())) != n:
            raise DataError(f"{where}: sample ids must be unique")
        return self

    def subset(self, index: np.ndarray) -> "ImageSet":
        """The rows at `index` (integer positions or a boolean mask), all columns kept aligned."""
        index = np.asarray(index)
        return ImageSet(
            images=self.images[index],
            labels=self.labels[index],
            attributes={k: v[index] for k, v in self.attributes.items()},
            label_names=list(self.label_names),
            attribute_vocab={k: list(v) for k, v in self.attribute_vocab.items()},
            ids=self.ids[index],
            provenance=self.provenance[index],
        )

    def concat(self, other: "ImageSet") -> "ImageSet":
        """This set's rows followed by `other`'s; both need the same vocabularies and image shape."""
        if other.label_names != self.label_names or other.attribute_vocab != self.attribute_vocab:
            raise DataError("cannot concatenate image sets with different label or attribute vocabularies")
        if other.image_shape != self.image_shape and len(other) and len(self):
            raise DataError(f"cannot concatenate images of shape {self.image_shape} and {other.image_shape}")
        return ImageSet(
            images=np.concatenate([self.images, other.images]),
            labels=np.concatenate([self.labels, other.labels]),
            attributes={k: np.concatenate([v, other.attributes[k]]) for k, v in self.attributes.items()},
            label_names=list(self.label_names),
            attribute_vocab={k: list(v) for k, v in self.attribute_vocab.items()},
            ids=np.concatenate([self.ids, other.ids]),
            provenance=np.concatenate([self.provenance, other.provenance]),
        )

    def empty_like(self) -> "ImageSet":
        """A set with no rows and this set's vocabularies."""
        return self.subset(np.zeros(0, dtype=np.int64))

    def group_codes(self, attribute: str) -> np.ndarray:
        """The codes (N,) of one attribute; a DataError names the known attributes if it is missing."""
        if attribute not in self.attributes:
            raise DataError(f"unknown attribute '{attribute}'; this set has {sorted(self.attributes)}")
        return self.attributes[attribute]

    def fingerprint(self) -> str:
        """A content hash: equal sets have equal fingerprints."""
        h = hashlib.sha256()
        for array in self._arrays().values():
            h.update(str(array.dtype).encode() + str(array.shape).encode())
            h.update(np.ascontiguousarray(array).tobytes())
        h.update(json.dumps(self._meta(), sort_keys=True).encode())
        return h.hexdigest()[:16]

    def _meta(self) -> dict:
        return {"label_names": self.label_names, "attribute_vocab": self.attribute_vocab,
                "attributes": list(self.attributes)}

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {"images": self.images, "labels": self.labels, "ids": self.ids, "provenance": self.provenance}
        arrays.update({f"attr__{k}": v for k, v in self.attributes.items()})
        return arrays

    def to_bytes(self) -> bytes:
        """The set as .npz bytes (no pickled objects)."""
        buffer = io.BytesIO()
        np.savez(buffer, meta=np.array(json.dumps(self._meta())), **self._arrays())
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "ImageSet":
        """Read what `to_bytes` wrote, with allow_pickle=False."""
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            return cls(
                images=npz["images"], labels=npz["labels"],
                attributes={k: npz[f"attr__{k}"] for k in meta["attributes"]},
                label_names=meta["label_names"], attribute_vocab=meta["attribute_vocab"],
                ids=npz["ids"], provenance=npz["provenance"],
            )

    def save(self, path: Path) -> None:
        """Write the set to one .npz file."""
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: Path) -> "ImageSet":
        """Read a set that `save` wrote."""
        return cls.from_bytes(Path(path).read_bytes())


SPLIT_NAMES = ("train", "val", "test", "test_ood", "unlabeled")
TEST_SPLITS = ("test", "test_ood")


@dataclass
class Splits:
    """A dataset's splits, as `Dataset.load` returns them; all share one image shape."""

    train: ImageSet  # what the scenarios skew and generators and classifiers train on
    val: ImageSet  # model selection only
    test: ImageSet  # the real test split every metric is computed on
    test_ood: ImageSet | None = None  # optional out-of-distribution test split (e.g. another site)
    unlabeled: ImageSet | None = None  # optional unlabeled images a generator may also learn from

    def items(self) -> Iterator[tuple[str, ImageSet]]:
        """(name, split) of the splits present, in the order train, val, test, test_ood, unlabeled."""
        for name in SPLIT_NAMES:
            value = getattr(self, name)
            if value is not None:
                yield name, value

    def test_splits(self) -> dict[str, ImageSet]:
        """The test splits present: test and, if given, test_ood."""
        return {name: s for name, s in self.items() if name in TEST_SPLITS}

    def replace(self, **changes: ImageSet) -> "Splits":
        """A copy with some splits replaced, e.g. `splits.replace(train=skewed)`."""
        values = dict(self.items())
        values.update(changes)
        return Splits(**values)

    def validate(self, where: str = "splits") -> "Splits":
        """Check every split and that they share one image shape; raise DataError naming the split."""
        shapes = set()
        for name, split in self.items():
            split.validate(f"{where}.{name}")
            shapes.add(split.image_shape)
        if len(shapes) > 1:
            raise DataError(f"{where}: all splits need one image shape, got {sorted(shapes)}")
        return self
