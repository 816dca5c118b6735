"""``make demo``: the main job on built-in data, end to end."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from ._main import main


def run() -> int:
    os.environ.setdefault("FULCRUM_HOME", str(Path.cwd() / ".fulcrum"))
    home = os.environ["FULCRUM_HOME"]
    print(f"== Fulcrum demo (registry under {home})\n")
    pareto = Path(home) / "demo-pareto.png"
    cost_plot = Path(home) / "demo-costs.png"
    steps = [
        ["datasets"],
        ["train", "builtin:breast_cancer", "--name", "cancer"],
        ["optimize", "cancer", "--constraints", "metric_drop<=0.01", "--alias", "production", "--plot", str(pareto)],
        ["models"],
        ["costs", "cancer@1", "--rate", "50/s", "--horizon", "12mo", "--plot", str(cost_plot)],
    ]
    for argv in steps:
        print(f"$ fulcrum {' '.join(argv)}")
        rc = main(argv)
        print()
        if rc:
            return rc
    from .. import load, read_table

    sample = read_table("builtin:breast_cancer").drop(columns=["target"]).sample(6, random_state=1)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "rows.csv"
        sample.rename_axis("row_id").reset_index().to_csv(src, index=False)  # an id column, passed through
        argv = ["predict", "cancer@production", str(src), "--keep", "row_id", "--no-progress"]  # CSV to stdout
        print(f"$ fulcrum {' '.join(argv)}")
        sys.stdout.flush()
        rc = main(argv)
        if rc:
            return rc
        print()
    pred = load("cancer@production")
    print("Python: fulcrum.load('cancer@production').predict(rows) ->")
    print(pred.predict(sample).round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(run())
