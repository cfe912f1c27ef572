"""Real dermatology loaders: Fitzpatrick17k (skin tone), HAM10000 / ISIC 2018 (age, sex, body site) and
ISIC 2017 (sex, age; melanoma vs other)."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from harness import DataError, hookimpl
from plugins.datasets._real import RealDataset, age_bucket, read_metadata, seeded_fraction, sex_name

#: class subsets of Fitzpatrick17k's `label` column
FITZPATRICK_SUBSETS = {
    # FairGen's five conditions (its Table 1)
    "fairgen5": ["allergic contact dermatitis", "basal cell carcinoma", "lichen planus", "psoriasis",
                 "squamous cell carcinoma"],
    # skin-diff's ("From Majority to Minority", Wang et al.) seven conditions: the labels of its released
    # data_splits/Fitz_subset.csv (github janet-sw/skin-diff); not the seven most frequent labels
    "skindiff7": ["basal cell carcinoma", "folliculitis", "nematode infection", "neutrophilic dermatoses",
                  "prurigo nodularis", "psoriasis", "squamous cell carcinoma"],
}
#: subsets of the coarser partition columns
PARTITIONS = {
    "three_partition": ["benign", "malignant", "non-neoplastic"],
    "nine_partition": ["benign dermal", "benign epidermal", "benign melanocyte", "genodermatoses", "inflammatory",
                       "malignant cutaneous lymphoma", "malignant dermal", "malignant epidermal", "malignant melanoma"],
}
#: Fitzpatrick types grouped as in FairGen / Groh et al.: I-II light, III-IV medium, V-VI dark
TONE_OF_TYPE = {1: "light", 2: "light", 3: "medium", 4: "medium", 5: "dark", 6: "dark"}


def high_risk(classes: list[str]) -> list[str]:
    return [c for c in classes if "carcinoma" in c or "melanoma" in c or c == "malignant"]


class Fitzpatrick17k(RealDataset):
    """Fitzpatrick17k with skin tone grouped light / medium / dark; `subset` picks the classes:
    fairgen5 (FairGen), skindiff7 (skin-diff), all (every `label` with an image, 114 in the full set), or the
    three_partition / nine_partition columns."""

    name = "fitzpatrick17k"
    version = "1"
    sensitive_attributes: ClassVar[list[str]] = ["skin_tone"]
    vocabularies = {"skin_tone": ["light", "medium", "dark"]}
    required = ["fitzpatrick17k.csv", "images"]
    source = "https://github.com/mattgroh/fitzpatrick17k (CSV; images downloaded from its url column)"
    layout = ("  fitzpatrick17k.csv          the released metadata (md5hash, fitzpatrick_scale, label, "
              "three_partition_label, ..., url_alphanum)\n"
              "  images/<md5hash>.jpg        one image per row, or images/<url_alphanum> as named by the CSV's\n"
              "                              url_alphanum column (rows without an image are left out and counted)")
    defaults = {**RealDataset.defaults, "subset": "fairgen5"}
    choices = {"subset": [*FITZPATRICK_SUBSETS, "all", *PARTITIONS]}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        subset = self.params["subset"]
        self.label_names = list(FITZPATRICK_SUBSETS.get(subset) or PARTITIONS.get(subset) or [])  # all: from the data
        self.high_risk_classes = high_risk(self.label_names)

    def read_table(self, root: Path) -> pd.DataFrame:
        subset = self.params["subset"]
        column = f"{subset}_label" if subset in PARTITIONS else "label"
        meta = read_metadata(self, root / "fitzpatrick17k.csv", ["md5hash", "fitzpatrick_scale", column])
        if subset != "all":
            meta = meta[meta[column].isin(self.label_names)]
        paths = pd.Series([self._image(root, row) for row in meta.itertuples()], index=meta.index, dtype=object)
        present = paths.notna().to_numpy()
        if not present.all():
            # the images are downloaded from third-party URLs, and some are always gone: say how many
            warnings.warn(f"fitzpatrick17k: {int((~present).sum())} of {len(meta)} rows of subset '{subset}' have no "
                          f"image under {root / 'images'} (looked for <md5hash>.jpg and <url_alphanum>); "
                          f"they are left out", stacklevel=2)
        meta, paths = meta[present], paths[present]
        if subset == "all":
            self.label_names = sorted(meta[column].unique())
            self.high_risk_classes = high_risk(self.label_names)
        return pd.DataFrame({
            "path": paths,
            "label": meta[column],
            "patient": meta["md5hash"].astype(str),  # no patient ids are released; one image each
            "skin_tone": meta["fitzpatrick_scale"].map(TONE_OF_TYPE),
        })


    @staticmethod
    def _image(root: Path, row: Any) -> str | None:
        """images/<md5hash>.jpg (the dataset's own naming), else the `url_alphanum` name that
        downloaders of the URL column use; None when neither exists."""
        names = [f"{row.md5hash}.jpg"]
        alphanum = getattr(row, "url_alphanum", None)
        if isinstance(alphanum, str) and alphanum:
            names += [alphanum, f"{alphanum}.jpg"]
        return next((f"images/{name}" for name in names if (root / "images" / name).is_file()), None)


class Ham10000(RealDataset):
    name = "ham10000"
    version = "1"
    label_names: ClassVar[list[str]] = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    high_risk_classes: ClassVar[list[str]] = ["mel", "bcc", "akiec"]
    sensitive_attributes: ClassVar[list[str]] = ["age", "sex", "site"]
    vocabularies = {"age": ["<40", "40-59", "60+"], "sex": ["female", "male"]}
    required = ["HAM10000_metadata.csv"]
    source = "https://doi.org/10.7910/DVN/DBW86T (Harvard Dataverse) or the ISIC 2018 challenge task 3"
    layout = ("  HAM10000_metadata.csv       lesion_id, image_id, dx, dx_type, age, sex, localization\n"
              "  HAM10000_images_part_1/<image_id>.jpg and HAM10000_images_part_2/<image_id>.jpg\n"
              "  (or all images in images/)")
    image_folders = ("HAM10000_images_part_1", "HAM10000_images_part_2", "images")

    def read_table(self, root: Path) -> pd.DataFrame:
        meta = read_metadata(self, root / "HAM10000_metadata.csv",
                             ["lesion_id", "image_id", "dx", "age", "sex", "localization"])
        paths = [self._find(root, image_id) for image_id in meta["image_id"]]
        if None in paths:
            missing = meta["image_id"][[p is None for p in paths]].iloc[0]
            raise DataError(f"ham10000: image {missing}.jpg not found in any of {self.image_folders} under {root}")
        site = meta["localization"].where(~meta["localization"].isin(["unknown"]), None)
        return pd.DataFrame({"path": paths, "label": meta["dx"], "patient": meta["lesion_id"].astype(str),
                             "age": age_bucket(meta["age"], [40, 60], ["<40", "40-59", "60+"]),
                             "sex": sex_name(meta["sex"]), "site": site})

    def _find(self, root: Path, image_id: str) -> str | None:
        for folder in self.image_folders:
            if (root / folder / f"{image_id}.jpg").is_file():
                return f"{folder}/{image_id}.jpg"
        return None


class Isic2017(RealDataset):
    """ISIC 2017 classification (Codella et al. 2017): melanoma vs other, sex as the sensitive attribute and
    age groups as a second one. The official validation images are `val`; `test` is carved from the official
    training images, stratified by class x sex and seeded (the official test images carry no labels here)."""

    name = "isic2017"
    version = "1"
    label_names: ClassVar[list[str]] = ["other", "melanoma"]
    high_risk_classes: ClassVar[list[str]] = ["melanoma"]
    sensitive_attributes: ClassVar[list[str]] = ["sex", "age"]
    vocabularies = {"sex": ["female", "male"], "age": ["<40", "40-59", "60+"]}
    data_folder = "isic2017"
    parts = {"Training": "train", "Validation": "val"}
    required = [f"ISIC-2017_{part}_{what}" for part in parts for what in ("Data", "Data_metadata.csv", "Classes.csv")]
    source = "https://challenge.isic-archive.com/data/#2017 (or ../shared/data/isic2017 here, resized to 256 px)"
    layout = ("  ISIC-2017_Training_Data/ISIC_<id>.jpg        and ISIC-2017_Validation_Data/ISIC_<id>.jpg\n"
              "  ISIC-2017_{Training,Validation}_Data_metadata.csv   image_id, age_approximate, sex\n"
              "  ISIC-2017_{Training,Validation}_Classes.csv         image_id, melanoma (0.0 / 1.0)")
    # the official validation split is `val`; only the test share of the training images is a parameter
    defaults = {k: v for k, v in RealDataset.defaults.items() if k != "val_fraction"}

    def read_table(self, root: Path) -> pd.DataFrame:
        tables = []
        for part, split in self.parts.items():
            meta = read_metadata(self, root / f"ISIC-2017_{part}_Data_metadata.csv",
                                 ["image_id", "age_approximate", "sex"])
            classes = read_metadata(self, root / f"ISIC-2017_{part}_Classes.csv", ["image_id", "melanoma"])
            table = meta.merge(classes, on="image_id", how="outer", indicator=True)
            unmatched = table[table["_merge"] != "both"]["image_id"].tolist()
            if unmatched:
                raise DataError(f"isic2017: {len(unmatched)} image ids are in only one of the {part} metadata and "
                                f"classes files (e.g. {unmatched[:3]}); both files must list the same images")
            tables.append(pd.DataFrame({
                "path": f"ISIC-2017_{part}_Data/" + table["image_id"] + ".jpg",
                "label": np.where(table["melanoma"] == 1, "melanoma", "other"),
                "patient": table["image_id"],  # no patient ids are released; one lesion per image
                "sex": sex_name(table["sex"]),
                "age": age_bucket(table["age_approximate"], [40, 60], ["<40", "40-59", "60+"]),
                "official": split}))
        return pd.concat(tables, ignore_index=True)

    def assign_splits(self, table: pd.DataFrame, seed: int) -> np.ndarray:
        """Official validation -> val; of the training images, a seeded test_fraction of every class x sex
        stratum -> test, the rest train."""
        split = table["official"].to_numpy().copy()
        training = table[table["official"] == "train"]
        strata = training["label"] + "|" + training["sex"].fillna("unknown")
        test = seeded_fraction(training["patient"], strata, seed, self.params["test_fraction"])
        split[training.index[test]] = "test"
        return split


@hookimpl
def harness_datasets() -> list[type]:
    return [Fitzpatrick17k, Ham10000, Isic2017]
