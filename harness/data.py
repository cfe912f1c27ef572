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
    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray  # int64 (N,) class codes, or (N, L) multi-hot
    attributes: dict[str, np.ndarray]  # name -> int64 codes (N,); -1 = unknown
    label_names: list[str]
    attribute_vocab: dict[str, list[str]]
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
        return len(self.label_names)

    @property
    def multilabel(self) -> bool:
        return self.labels.ndim == 2

    @property
    def image_shape(self) -> tuple[int, int, int]:
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
        return self.subset(np.zeros(0, dtype=np.int64))

    def group_codes(self, attribute: str) -> np.ndarray:
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
        buffer = io.BytesIO()
        np.savez(buffer, meta=np.array(json.dumps(self._meta())), **self._arrays())
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "ImageSet":
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            return cls(
                images=npz["images"], labels=npz["labels"],
                attributes={k: npz[f"attr__{k}"] for k in meta["attributes"]},
                label_names=meta["label_names"], attribute_vocab=meta["attribute_vocab"],
                ids=npz["ids"], provenance=npz["provenance"],
            )

    def save(self, path: Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: Path) -> "ImageSet":
        return cls.from_bytes(Path(path).read_bytes())


SPLIT_NAMES = ("train", "val", "test", "test_ood", "unlabeled")
TEST_SPLITS = ("test", "test_ood")


@dataclass
class Splits:
    train: ImageSet
    val: ImageSet
    test: ImageSet
    test_ood: ImageSet | None = None
    unlabeled: ImageSet | None = None

    def items(self) -> Iterator[tuple[str, ImageSet]]:
        for name in SPLIT_NAMES:
            value = getattr(self, name)
            if value is not None:
                yield name, value

    def test_splits(self) -> dict[str, ImageSet]:
        return {name: s for name, s in self.items() if name in TEST_SPLITS}

    def replace(self, **changes: ImageSet) -> "Splits":
        values = dict(self.items())
        values.update(changes)
        return Splits(**values)

    def validate(self, where: str = "splits") -> "Splits":
        shapes = set()
        for name, split in self.items():
            split.validate(f"{where}.{name}")
            shapes.add(split.image_shape)
        if len(shapes) > 1:
            raise DataError(f"{where}: all splits need one image shape, got {sorted(shapes)}")
        return self
