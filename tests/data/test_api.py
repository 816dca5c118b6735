from __future__ import annotations

import fulcrum.data as data


def test_public_api_is_what_it_claims():
    assert sorted(data.__all__) == sorted(
        [
            "read_table", "SUPPORTED_EXTENSIONS", "BuiltinDataset", "list_builtin", "builtin_info", "load_builtin",
            "ColumnSpec", "Schema", "COLUMN_KINDS", "infer_schema", "Preprocessor", "LabelCodec", "infer_task",
            "check_target", "train_val_test_split", "kfold_indices", "profile_frame", "fingerprint",
        ]
    )
    for name in data.__all__:
        assert hasattr(data, name), name
