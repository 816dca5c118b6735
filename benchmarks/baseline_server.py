"""The servers Fulcrum's is compared with (benchmarks/bench_serve.py starts them as subprocesses).

``--kind baseline``: what a user would otherwise write — a plain FastAPI endpoint with a pydantic
request model that applies fitted scikit-learn/pandas preprocessing (imputer, scaler, one-hot)
and calls the torch model, once per request. Same data and the same MLP shape as the Fulcrum
package it is compared with (weights do not matter for speed).

``--kind bare``: a bare Starlette JSON endpoint (parse the body, answer a constant): the HTTP
floor, for the HTTP-overhead comparison.

    python benchmarks/baseline_server.py --kind baseline --data builtin:penguins --hidden 128,64 --port 9001
"""


import argparse
import json
from typing import Any, Optional


def baseline_app(data: str, hidden: list[int]) -> Any:
    import numpy as np
    import pandas as pd
    import torch
    from fastapi import FastAPI
    from pydantic import BaseModel, create_model
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from fulcrum.data import builtin_info, read_table

    df = read_table(data)
    target = builtin_info(data.split(":", 1)[1]).target
    X = df.drop(columns=[target])
    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
    categorical = [c for c in X.columns if c not in numeric]
    pre = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), categorical),
    ], sparse_threshold=0.0)
    pre.fit(X)
    labels = sorted(df[target].dropna().astype(str).unique())
    width = pre.transform(X.head(1)).shape[1]
    layers: list[torch.nn.Module] = []
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    layers.append(torch.nn.Linear(width, len(labels)))
    model = torch.nn.Sequential(*layers).eval()

    fields = {c: (Optional[float], None) for c in numeric} | {c: (Optional[str], None) for c in categorical}
    Record = create_model("Record", **fields)  # type: ignore[call-overload]

    class Request(BaseModel):
        records: list[Record]  # type: ignore[valid-type]

    app = FastAPI()

    @app.post("/predict")
    def predict(req: Request) -> dict[str, Any]:
        frame = pd.DataFrame([r.model_dump() for r in req.records])
        for c in numeric:
            frame[c] = frame[c].astype(float)
        x = torch.as_tensor(pre.transform(frame), dtype=torch.float32)
        with torch.no_grad():
            probs = torch.softmax(model(x), dim=1).numpy()
        return {
            "predictions": [labels[i] for i in probs.argmax(axis=1)],
            "probabilities": [dict(zip(labels, map(float, row))) for row in probs],
        }

    _ = np  # numpy is what sklearn/torch hand back
    return app


def bare_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def predict(request: Request) -> Response:
        body = json.loads(await request.body())
        n = len(body.get("records", []))
        return Response(json.dumps({"predictions": ["x"] * n}), media_type="application/json")

    return Starlette(routes=[Route("/predict", predict, methods=["POST"])])


def main() -> None:
    import uvicorn

    p = argparse.ArgumentParser()
    p.add_argument("--kind", choices=["baseline", "bare"], default="baseline")
    p.add_argument("--data", default="builtin:penguins")
    p.add_argument("--hidden", default="128,64")
    p.add_argument("--port", type=int, default=9001)
    p.add_argument("--access-log", action="store_true")
    args = p.parse_args()
    app = baseline_app(args.data, [int(h) for h in args.hidden.split(",")]) if args.kind == "baseline" else bare_app()
    uvicorn.run(app, host="127.0.0.1", port=args.port, access_log=args.access_log, log_level="warning")


if __name__ == "__main__":
    main()
