"""Data: read tables, built-in datasets, schema inference, preprocessing, targets, splits and profiles.

::

    df = read_table("train.csv")                      # or "builtin:iris", a Parquet/JSONL file, a DataFrame
    df, n_dropped = check_target(df, "label", "auto")
    schema = infer_schema(df, target="label")
    train, val, test = train_val_test_split(df, "label", task=infer_task(df["label"]), seed=0)
    pre = Preprocessor(schema).fit(train)             # fitted on the training split only
    X = pre.transform(val)                            # float32 (n_rows, pre.n_features_)
"""

from __future__ import annotations

from ._builtin import BuiltinDataset, builtin_info, list_builtin, load_builtin
from ._preprocess import Preprocessor
from ._profile import fingerprint, profile_frame
from ._readers import SUPPORTED_EXTENSIONS, read_table
from ._schema import COLUMN_KINDS, ColumnSpec, Schema, infer_schema
from ._split import kfold_indices, train_val_test_split
from ._target import LabelCodec, check_target, infer_task

__all__ = [
    "read_table",
    "SUPPORTED_EXTENSIONS",
    "BuiltinDataset",
    "list_builtin",
    "builtin_info",
    "load_builtin",
    "ColumnSpec",
    "Schema",
    "COLUMN_KINDS",
    "infer_schema",
    "Preprocessor",
    "LabelCodec",
    "infer_task",
    "check_target",
    "train_val_test_split",
    "kfold_indices",
    "profile_frame",
    "fingerprint",
]
