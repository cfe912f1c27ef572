"""Real chest X-ray loaders: CheXpert (sex, age), the COVID-19 image data collection (sex, age, site) and
FairGen's "CheXpert combine" of the two (sex, age, source)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from harness import DataError, hookimpl
from plugins.datasets._real import RealDataset, age_bucket, inside, read_metadata, sex_name

AGE_EDGES, AGE_NAMES = [40, 60, 80], ["<40", "40-59", "60-79", "80+"]
FRONTAL_VIEWS = {"PA", "AP", "AP Supine", "AP semi erect", "AP Erect"}


class CheXpert(RealDataset):
    """Single-label CheXpert: rows with exactly one positive among the chosen findings."""

    name = "chexpert"
    version = "1"
    channels = 1
    sensitive_attributes: ClassVar[list[str]] = ["sex", "age"]
    vocabularies = {"sex": ["female", "male"], "age": AGE_NAMES}
    required = ["train.csv"]
    source = "https://stanfordmlgroup.github.io/competitions/chexpert/ (CheXpert-v1.0 or -small)"
    layout = ("  train.csv (and optionally valid.csv)   Path, Sex, Age, Frontal/Lateral, one column per finding\n"
              "  CheXpert-v1.0-small/train/patientNNNNN/studyN/viewN_frontal.jpg   as in the Path column\n"
              "  (root is the folder holding train.csv; Path's first folder may be root itself)")
    defaults = {**RealDataset.defaults,
                "findings": ["No Finding", "Cardiomegaly", "Pleural Effusion", "Pneumonia", "Pneumothorax"]}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.label_names = list(self.params["findings"])
        self.high_risk_classes = [f for f in self.label_names if f in ("Pneumothorax", "Pneumonia")]

    def read_table(self, root: Path) -> pd.DataFrame:
        tables = [read_metadata(self, root / name, ["Path", "Sex", "Age", "Frontal/Lateral"])
                  for name in ("train.csv", "valid.csv") if (root / name).exists()]
        meta = pd.concat(tables, ignore_index=True)
        unknown = [f for f in self.label_names if f not in meta.columns]
        if unknown:
            raise DataError(f"chexpert: findings {unknown} are not columns of train.csv; choose from {list(meta.columns[5:])}")
        meta = meta[meta["Frontal/Lateral"] == "Frontal"]
        positive = meta[self.label_names].fillna(0).to_numpy() == 1  # uncertain (-1) counts as not positive
        meta, positive = meta[positive.sum(axis=1) == 1], positive[positive.sum(axis=1) == 1]
        return pd.DataFrame({
            "path": [self._relative(root, p) for p in meta["Path"]],
            "label": np.asarray(self.label_names)[positive.argmax(axis=1)],
            "patient": meta["Path"].str.extract(r"(patient\d+)", expand=False),
            "sex": sex_name(meta["Sex"]), "age": age_bucket(meta["Age"], AGE_EDGES, AGE_NAMES),
        })

    @staticmethod
    def _relative(root: Path, path: str) -> str:
        """Path as listed, or without its first folder when root is that folder."""
        return path if (root / path).exists() else path.split("/", 1)[-1]


class CovidChestXray(RealDataset):
    """Frontal X-rays of the COVID-19 image data collection: COVID-19, other pneumonia, no finding."""

    name = "covid"
    version = "1"
    channels = 1
    label_names: ClassVar[list[str]] = ["COVID-19", "other pneumonia", "No Finding"]
    high_risk_classes: ClassVar[list[str]] = ["COVID-19"]
    sensitive_attributes: ClassVar[list[str]] = ["sex", "age", "site"]
    vocabularies = {"sex": ["female", "male"], "age": AGE_NAMES}
    data_folder = "covid-chestxray"
    required = ["metadata.csv", "images"]
    source = "https://github.com/ieee8023/covid-chestxray-dataset (or ../shared/data/covid-chestxray here)"
    layout = ("  metadata.csv     the original columns (patientid, sex, age, finding, view, modality, location, "
              "filename, ...)\n  images/<filename>")
    defaults = {**RealDataset.defaults, "top_sites": 5}  # sites beyond the largest few become "other"

    def read_table(self, root: Path) -> pd.DataFrame:
        meta = read_metadata(self, root / "metadata.csv",
                             ["patientid", "sex", "age", "finding", "view", "modality", "location", "filename"])
        meta = meta[(meta["modality"] == "X-ray") & meta["view"].isin(FRONTAL_VIEWS) & (meta["finding"] != "todo")]
        meta = meta.drop_duplicates("filename")  # the collection lists some images twice (several offsets)
        labels = meta["finding"].astype(str).map(self._label)
        absent = [name for name in self.label_names if not (labels == name).any()]
        if absent:
            raise DataError(f"covid: no frontal X-ray in {root / 'metadata.csv'} has the finding {absent} (findings "
                            f"seen: {sorted(meta['finding'].astype(str).unique())}); the loader expects the "
                            f"collection's metadata, where a finding is a name or a path such as "
                            f"Pneumonia/Viral/COVID-19")
        return pd.DataFrame({
            "path": "images/" + meta["filename"].astype(str),
            "label": labels,
            "patient": meta["patientid"].astype(str),
            "sex": sex_name(meta["sex"]), "age": age_bucket(meta["age"], AGE_EDGES, AGE_NAMES),
            "site": self._sites(meta["location"]),
        })

    @staticmethod
    def _label(finding: str) -> str:
        """A finding as the collection writes it: a name ("COVID-19", "COVID-19, ARDS") or, in its
        newer metadata, a path whose last part is the name ("Pneumonia/Viral/COVID-19")."""
        name = finding.rsplit("/", 1)[-1].strip()
        if name.startswith("COVID-19"):
            return "COVID-19"
        return "No Finding" if name == "No Finding" else "other pneumonia"

    def _sites(self, locations: pd.Series) -> pd.Series:
        top = locations.value_counts().index[: self.params["top_sites"]]
        return locations.map(lambda v: None if pd.isna(v) else v if v in top else "other")


class CheXpertCombine(RealDataset):
    """FairGen's "CheXpert combine": CheXpert plus the COVID-19 image data collection as one dataset.

    Label space as in FairGen's released code (src/inference.py, chest = 2 sexes x 5 findings): COVID-19 from
    the collection; `findings` (Edema, Lung Opacity, No Finding, Pleural Effusion) from CheXpert's single-label
    frontal rows. The collection's "No Finding" images join No Finding; its other pneumonias are outside the
    label space and left out. Sex and age share one vocabulary across sources; `source` says where an image
    came from (the source is confounded with COVID-19, which only the collection has)."""

    name = "chexpert_combine"
    version = "1"
    channels = 1
    sensitive_attributes: ClassVar[list[str]] = ["sex", "age", "source"]
    vocabularies = {"sex": ["female", "male"], "age": AGE_NAMES, "source": ["chexpert", "covid"]}
    required = CheXpert.required
    source = f"{CheXpert.source}; the COVID-19 collection (covid_root): {CovidChestXray.source}"
    layout = (f"root (CheXpert):\n{CheXpert.layout}\ncovid_root (the COVID-19 collection):\n{CovidChestXray.layout}")
    defaults = {**RealDataset.defaults, "covid_root": "",
                "findings": ["Edema", "Lung Opacity", "No Finding", "Pleural Effusion"]}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.label_names = ["COVID-19", *self.params["findings"]]
        self.high_risk_classes = ["COVID-19"]
        self.chexpert = CheXpert(root=self.params["root"], findings=self.params["findings"])
        self.covid = CovidChestXray(root=self.params["covid_root"])

    def read_table(self, root: Path) -> pd.DataFrame:
        try:
            covid_root = self.covid.root()
        except DataError as exc:  # its message says "root"; here the parameter is covid_root
            raise DataError(f"chexpert_combine: the COVID-19 collection is not at covid_root = "
                            f"\"{self.params['covid_root']}\" (set covid_root = \"PATH\"; its layout below is "
                            f"under covid_root).\n{exc}") from exc
        parts = []
        for source, part, where in (("chexpert", self.chexpert, root), ("covid", self.covid, covid_root)):
            table = part.read_table(where)
            table = table[table["label"].isin(self.label_names)]
            parts.append(pd.DataFrame({"path": source + "/" + table["path"], "label": table["label"],
                                       "patient": source + ":" + table["patient"].astype(str),
                                       "sex": table["sex"], "age": table["age"], "source": source}))
        self.covid_root = covid_root
        table = pd.concat(parts, ignore_index=True)
        absent = [name for name in self.label_names if not (table["label"] == name).any()]
        if absent:
            raise DataError(f"chexpert_combine: no rows of {absent} in CheXpert ({root}) or the COVID-19 collection "
                            f"({covid_root}); every class of the combine must have images")
        return table

    def data_roots(self) -> list[Path]:
        return [self.root(), self.covid.root()]

    def files(self, root: Path, table: pd.DataFrame) -> list[Path]:
        roots = {"chexpert": root, "covid": self.covid_root}
        return [inside(roots[source], path.split("/", 1)[1]) for source, path in zip(table["source"], table["path"])]


@hookimpl
def harness_datasets() -> list[type]:
    return [CheXpert, CovidChestXray, CheXpertCombine]
