"""Real brain MRI loader: OASIS-1 slices (age band above/below 75, sex; demented if CDR > 0), as in FairGen."""
from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

import pandas as pd

from harness import hookimpl
from plugins.datasets._real import RealDataset, age_bucket, read_metadata, sex_name

SUBJECT = re.compile(r"(OAS1_\d{4}_MR\d)")


class Oasis1(RealDataset):
    name = "oasis"
    version = "1"
    channels = 1
    label_names: ClassVar[list[str]] = ["nondemented", "demented"]
    high_risk_classes: ClassVar[list[str]] = ["demented"]
    sensitive_attributes: ClassVar[list[str]] = ["age", "sex"]
    vocabularies = {"age": ["below75", "above75"], "sex": ["female", "male"]}
    required = ["oasis_cross-sectional.csv", "Data"]
    source = ("https://sites.wustl.edu/oasisbrains/ (OASIS-1 cross-sectional CSV) and 2D slices, e.g. the "
              "Kaggle 'imagesoasis' export (Data/<class>/OAS1_XXXX_MR1_mpr-N_SLICE.jpg)")
    layout = ("  oasis_cross-sectional.csv   ID, M/F, Age, CDR, ...\n"
              "  Data/**/OAS1_XXXX_MR1*.jpg|png   2D slices; the subject ID is read from the file name")

    def read_table(self, root: Path) -> pd.DataFrame:
        subjects = read_metadata(self, root / "oasis_cross-sectional.csv", ["ID", "M/F", "Age", "CDR"]).set_index("ID")
        rows = []
        for image in sorted((root / "Data").rglob("*")):
            match = SUBJECT.search(image.name)
            if image.suffix.lower() in (".jpg", ".jpeg", ".png") and match and match.group(1) in subjects.index:
                rows.append({"path": str(image.relative_to(root)), "patient": match.group(1)})
        table = pd.DataFrame(rows, columns=["path", "patient"])
        info = subjects.loc[table["patient"]].reset_index(drop=True)
        table["label"] = info["CDR"].map(lambda cdr: None if pd.isna(cdr) else "demented" if cdr > 0 else "nondemented")
        table["age"] = age_bucket(info["Age"], [75], ["below75", "above75"]).to_numpy()
        table["sex"] = sex_name(info["M/F"]).to_numpy()
        return table[table["label"].notna()]


@hookimpl
def harness_datasets() -> list[type]:
    return [Oasis1]
