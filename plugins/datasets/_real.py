"""Shared machinery of the real-data loaders: the root folder, safe paths, image cache, splits.

A loader says where its data comes from and reads its metadata into a table with the columns
`path` (relative to root), `label` (a class name), `patient` (samples of one patient never cross
splits) and one column per sensitive attribute (a value name or None for unknown). This module
turns the table into splits: images are read once, resized to the run's resolution and cached as
.npz (no pickle) with the SHA-256 of the images inside, under the run's --cache (HARNESS_CACHE) in
datasets/; a damaged cache file is reported by name and rebuilt. Patients go to train/val/test by a
seeded hash, so splits are deterministic. A loader
with an official split (CAMELYON17 in WILDS) overrides `assign_splits`, which may also name 'test_ood'.
"""
from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from PIL import Image

from harness import Dataset, DataError, ImageSet, Splits, progress


#: environment variable naming the folder that holds the real datasets, one subfolder each (`data_folder`)
DATA_ENV = "HARNESS_DATA"
#: where the data live when DATA_ENV is unset: shared/data beside the project checkout (../shared/data)
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def data_home() -> Path:
    """The folder of the real datasets: $HARNESS_DATA, else ../shared/data beside the checkout."""
    return Path(os.path.expanduser(os.environ[DATA_ENV])) if os.environ.get(DATA_ENV) else SHARED_DATA


def default_cache() -> Path:
    """datasets/ in the run's cache (HARNESS_CACHE, which `harness run` sets to its --cache)."""
    return Path(os.environ.get("HARNESS_CACHE") or Path.home() / ".cache" / "harness") / "datasets"

DROP = ""  # the split of rows a loader leaves out (e.g. WILDS' OOD validation hospital)


class RealDataset(Dataset):
    """Base of the real loaders; subclasses set `source`, `layout`, `required` and `read_table`."""

    #: where to get the data (shown when it is missing)
    source: ClassVar[str] = ""
    #: the expected on-disk layout under root (shown when it is missing)
    layout: ClassVar[str] = ""
    #: the loader's folder under data_home(): its root when the `root` parameter is empty
    data_folder: ClassVar[str] = ""
    #: files that must exist under root
    required: ClassVar[list[str]] = []
    channels: ClassVar[int] = 3
    #: parameters with a fixed set of values: name -> the values (checked here, listed by `harness ls --datasets`)
    choices: ClassVar[dict[str, list[str]]] = {}
    #: fixed vocabularies; attributes not listed take the sorted values seen in the data
    vocabularies: ClassVar[dict[str, list[str]]] = {}
    defaults: ClassVar[dict[str, Any]] = {
        "root": "",
        "resolution": 32,
        "cache_dir": "",  # default: datasets/ in the run's --cache
        "attribute": "",  # the primary sensitive attribute; default the dataset's first
        "val_fraction": 0.1,
        "test_fraction": 0.2,
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        for key, values in self.choices.items():
            if self.params[key] not in values:
                raise DataError(f"dataset '{self.name}': unknown {key} '{self.params[key]}'; choose one of {values}")
        chosen = self.params["attribute"]
        if chosen:
            if chosen not in type(self).sensitive_attributes:
                raise DataError(f"dataset '{self.name}' has no attribute '{chosen}'; "
                                f"choose one of {type(self).sensitive_attributes}")
            self.sensitive_attributes = [chosen] + [a for a in type(self).sensitive_attributes if a != chosen]

    # -- what a loader implements ----------------------------------------------------------
    def read_table(self, root: Path) -> pd.DataFrame:
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------------------
    def root(self) -> Path:
        """The `root` parameter, else data_home()/data_folder for a loader with a data_folder."""
        given = self.params["root"] or (str(data_home() / self.data_folder) if self.data_folder else "")
        root = Path(os.path.expanduser(given)).resolve() if given else None
        missing = [] if root and root.is_dir() else ["."]
        if root and not missing:
            missing = [name for name in self.required if not (root / name).exists()]
        if missing:
            where = f"{root}" if root else "(no root given: set the dataset parameter root = \"PATH\")"
            if root and not self.params["root"]:
                where += (f" (the default: ${DATA_ENV}/{self.data_folder}, or {SHARED_DATA / self.data_folder} "
                          f"when {DATA_ENV} is unset; set {DATA_ENV} or the dataset parameter root = \"PATH\")")
            raise DataError(f"dataset '{self.name}': data not found at {where}; missing {missing}.\n"
                            f"Get it from: {self.source}\nExpected layout under root:\n{self.layout}")
        return root

    def load(self, seed: int) -> Splits:
        root = self.root()
        table = self.read_table(root).reset_index(drop=True)
        if table.empty:
            raise DataError(f"dataset '{self.name}': no usable rows under {root} (check the layout:\n{self.layout})")
        split = self.assign_splits(table, seed)
        kept = split != DROP  # rows no split uses are never read
        table, split = table[kept].reset_index(drop=True), split[kept]
        images = self.cached_images(root, self.files(root, table))
        full = self.image_set(table, images)
        parts = {name: full.subset(np.flatnonzero(split == name)) for name in ("train", "val", "test")}
        if (split == "test_ood").any():
            parts["test_ood"] = full.subset(np.flatnonzero(split == "test_ood"))
        return Splits(**parts).validate(self.name)

    def data_roots(self) -> list[Path]:
        """The folders this dataset reads; `data_digest` covers every file under them."""
        return [self.root()]

    def data_digest(self) -> str:
        """Digest of the file list under the data roots (path, size, mtime), so edited, added or
        removed metadata or images give new splits instead of the cached ones."""
        digest = hashlib.sha256()
        image_cache = Path(self.params["cache_dir"] or default_cache()).resolve()
        for root in self.data_roots():
            digest.update(f"{root}\n".encode())
            for folder, dirs, names in os.walk(root):
                dirs[:] = sorted(d for d in dirs if (Path(folder) / d).resolve() != image_cache)  # our own output
                for name in sorted(names):
                    path = Path(folder) / name
                    stat = path.stat()
                    digest.update(f"{path.relative_to(root)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:20]

    def assign_splits(self, table: pd.DataFrame, seed: int) -> np.ndarray:
        """'train' / 'val' / 'test' (or 'test_ood', or DROP) per row; by default a seeded hash of the patient."""
        return assign_splits(table["patient"].astype(str), seed, self.params["val_fraction"],
                             self.params["test_fraction"])

    def files(self, root: Path, table: pd.DataFrame) -> list[Path]:
        """The image file of each row (its `path` is relative to root)."""
        return [inside(root, p) for p in table["path"]]

    def image_set(self, table: pd.DataFrame, images: np.ndarray) -> ImageSet:
        labels = pd.Categorical(table["label"], categories=self.label_names).codes
        attributes, vocab = {}, {}
        for name in self.sensitive_attributes:
            values = [None if pd.isna(v) else str(v) for v in table[name]]
            vocab[name] = self.vocabularies.get(name) or sorted({v for v in values if v is not None})
            attributes[name] = pd.Categorical(values, categories=vocab[name]).codes.astype(np.int64)
        return ImageSet(images=images, labels=labels, attributes=attributes, label_names=list(self.label_names),
                        attribute_vocab=vocab, ids=np.array([f"{self.name}:{p}" for p in table["path"]]))

    def cached_images(self, root: Path, paths: list[Path]) -> np.ndarray:
        """Images resized to the resolution, read from the cache when the same files were read before."""
        resolution = self.params["resolution"]
        digest = hashlib.sha256(f"{self.name}|{self.version}|{resolution}|{self.channels}".encode())
        for path in paths:
            stat = path.stat()
            digest.update(f"|{path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        cache_dir = Path(self.params["cache_dir"] or default_cache())
        cache_file = cache_dir / f"{self.name}-{resolution}px-{digest.hexdigest()[:20]}.npz"
        if cache_file.exists():
            images = read_cached_images(cache_file)
            if images is not None:
                return images
        images = np.stack([read_image(p, resolution, self.channels) for p in paths])
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = cache_file.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(partial, images=images, sha256=np.array(_images_sha256(images)))
        partial.replace(cache_file)  # atomic, so concurrent runs never read half a file
        return images


def read_cached_images(cache_file: Path) -> np.ndarray | None:
    """The images of a cache file, or None (with a warning naming the file) when it is damaged,
    unreadable or does not match the checksum stored with it; the caller rebuilds it."""
    try:
        with np.load(cache_file, allow_pickle=False) as npz:
            images, stored = npz["images"], str(npz["sha256"])
        if _images_sha256(images) == stored:
            return images
        problem = "the images do not match their checksum"
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    progress.warn(f"image cache {cache_file} is damaged ({problem}); rebuilding it from the image files")
    return None


def _images_sha256(images: np.ndarray) -> str:
    digest = hashlib.sha256(f"{images.dtype}{images.shape}".encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    return digest.hexdigest()


def read_metadata(dataset: RealDataset, path: Path, columns: list[str]) -> pd.DataFrame:
    """A metadata CSV with the columns a loader reads; an empty file or a missing column is a
    DataError naming the file, the missing columns and the expected layout."""
    expected = f"Expected layout under root:\n{dataset.layout}"
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"dataset '{dataset.name}': {path} is empty; it needs the columns {columns}.\n"
                        f"{expected}") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"dataset '{dataset.name}': {path} is not a readable CSV ({exc}).\n{expected}") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"dataset '{dataset.name}': {path} lacks the columns {missing} (it has {list(table.columns)}); "
                        f"the loader reads {columns}.\n{expected}")
    return table


def inside(root: Path, relative: str | os.PathLike) -> Path:
    """root / relative, refusing paths that escape root (absolute paths, '..', links outside)."""
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise DataError(f"metadata path '{relative}' points outside the data root {root}; refusing to read it")
    if not path.is_file():
        raise DataError(f"image '{relative}' listed in the metadata is missing under {root}")
    return path


def read_image(path: Path, resolution: int, channels: int) -> np.ndarray:
    """Centre-crop to a square, resize to resolution, return uint8 (C, R, R).

    An unreadable or truncated file is a DataError naming it, not a PIL traceback."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB" if channels == 3 else "L")
            side = min(image.size)
            left, top = (image.width - side) // 2, (image.height - side) // 2
            image = image.crop((left, top, left + side, top + side)).resize((resolution, resolution), Image.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image {path}: {exc}; remove its metadata row or replace the file") from exc
    return array.transpose(2, 0, 1) if channels == 3 else array[None]


def assign_splits(patients: pd.Series, seed: int, val_fraction: float, test_fraction: float) -> np.ndarray:
    """'train' / 'val' / 'test' per row, by a seeded hash of the patient, so a patient stays in one split."""
    def draw(patient: str) -> float:
        return int(hashlib.sha256(f"{seed}:{patient}".encode()).hexdigest()[:12], 16) / 16 ** 12

    u = patients.map(draw).to_numpy()
    return np.where(u < test_fraction, "test", np.where(u < test_fraction + val_fraction, "val", "train"))


def seeded_fraction(ids: pd.Series, strata: pd.Series, seed: int, fraction: float) -> np.ndarray:
    """A boolean mask choosing round(fraction x n) rows of every stratum, by a seeded hash of the id:
    deterministic, and stratified so each class x group keeps its share."""
    rank = ids.astype(str).map(lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())
    order = pd.DataFrame({"stratum": strata.to_numpy(), "rank": rank.to_numpy()})
    position = order.groupby("stratum")["rank"].rank(method="first").to_numpy()
    size = order.groupby("stratum")["rank"].transform("size").to_numpy()
    return position <= np.round(fraction * size)


def age_bucket(ages: pd.Series, edges: list[float], names: list[str]) -> pd.Series:
    """Ages (years, NaN unknown) -> bucket names; edges are the lower bounds of buckets 2..k."""
    ages = pd.to_numeric(ages, errors="coerce")
    codes = np.searchsorted(np.asarray(edges), ages.to_numpy(), side="right")
    return pd.Series([names[c] if not np.isnan(a) else None for c, a in zip(codes, ages)], index=ages.index)


def sex_name(values: pd.Series, female: tuple[str, ...] = ("F", "Female", "female"),
             male: tuple[str, ...] = ("M", "Male", "male")) -> pd.Series:
    return values.map(lambda v: "female" if v in female else "male" if v in male else None)
