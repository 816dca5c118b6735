"""The servers Fulcrum's is compared with (benchmarks/bench_serve.py starts them as subprocesses).

``--kind baseline``: what a competent engineer would write by hand for one model: an *async*
FastAPI endpoint that reads the JSON body with orjson (no pydantic model per record), encodes
the records with numpy from preprocessing parameters fitted once at start-up (median
imputation, standardization, one-hot by a dict lookup), runs the model, and answers with
orjson. A linear model (``--model linear``, what ``fulcrum train`` picks for breast_cancer) is a
numpy matmul + softmax; an MLP (``--model mlp --hidden 2048,2048,2048``) is torch eager under
``inference_mode`` with its threads set to the physical cores (Fulcrum's ONNX Runtime setting)
and one inter-op thread. The model is warmed up before the port opens. Same data, same input
width and layer shapes as the Fulcrum package it is compared with (weights do not matter for
speed). One request, one computation: there is no batching across requests.

``--kind bare``: a bare Starlette JSON endpoint (parse the body, answer a constant): the HTTP
floor, for the HTTP-overhead comparison.

    python benchmarks/baseline_server.py --kind baseline --data builtin:breast_cancer --model linear --port 9001
"""

import argparse
import math
from typing import Any, Dict, List

# No ``from __future__ import annotations`` here: FastAPI reads the endpoint's annotations at
# run time, and ``Request`` is imported inside baseline_app.


def _physical_cores() -> int:
    try:
        from fulcrum.runtime._engines import physical_cores

        return int(physical_cores())
    except Exception:  # noqa: BLE001
        import os

        return max(1, (os.cpu_count() or 2) // 2)


class Encoder:
    """Fitted once: per numeric column its median, mean and scale; per categorical column its
    categories. ``encode(records)`` -> float32 matrix [N, width], numpy only."""

    def __init__(self, frame: Any) -> None:
        import numpy as np
        import pandas as pd

        self.numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
        self.categorical = [c for c in frame.columns if c not in self.numeric]
        num = frame[self.numeric].to_numpy(dtype=np.float64)
        self.median = np.nanmedian(num, axis=0)
        filled = np.where(np.isnan(num), self.median, num)
        self.mean = filled.mean(axis=0)
        self.scale = filled.std(axis=0)
        self.scale[self.scale == 0] = 1.0
        self.index: List[Dict[str, int]] = []
        offset = len(self.numeric)
        for c in self.categorical:
            cats = sorted(str(v) for v in frame[c].dropna().unique())
            self.index.append({v: offset + i for i, v in enumerate(cats)})
            offset += len(cats)
        self.width = offset

    def encode(self, records: List[Dict[str, Any]]) -> Any:
        import numpy as np

        n = len(records)
        num = np.array([[r.get(c) if r.get(c) is not None else math.nan for c in self.numeric] for r in records],
                       dtype=np.float64).reshape(n, len(self.numeric))
        num = np.where(np.isnan(num), self.median, num)
        out = np.zeros((n, self.width), dtype=np.float32)
        out[:, : len(self.numeric)] = (num - self.mean) / self.scale
        for col, idx in zip(self.categorical, self.index):
            for i, r in enumerate(records):
                j = idx.get(str(r.get(col)))
                if j is not None:
                    out[i, j] = 1.0
        return out


def baseline_app(data: str, model: str, hidden: List[int]) -> Any:
    import numpy as np
    import orjson
    from fastapi import FastAPI, Request
    from fastapi.responses import Response

    from fulcrum.data import builtin_info, read_table

    df = read_table(data)
    target = builtin_info(data.split(":", 1)[1]).target
    df = df[df[target].notna()]
    encoder = Encoder(df.drop(columns=[target]))
    labels = sorted(str(v) for v in df[target].unique())
    k = len(labels)
    rng = np.random.default_rng(0)

    if model == "linear":
        weight = rng.standard_normal((encoder.width, k)).astype(np.float32) * 0.1
        bias = np.zeros(k, dtype=np.float32)

        def probabilities(x: Any) -> Any:
            z = x @ weight + bias
            z -= z.max(axis=1, keepdims=True)
            e = np.exp(z)
            return e / e.sum(axis=1, keepdims=True)
    else:
        import torch

        torch.set_num_threads(_physical_cores())
        torch.set_num_interop_threads(1)
        layers: List[Any] = []
        width = encoder.width
        for h in hidden:
            layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
            width = h
        layers.append(torch.nn.Linear(width, k))
        net = torch.nn.Sequential(*layers).eval()

        def probabilities(x: Any) -> Any:
            with torch.inference_mode():
                return torch.softmax(net(torch.from_numpy(x)), dim=1).numpy()

    def predict(records: List[Dict[str, Any]]) -> Dict[str, Any]:
        probs = probabilities(encoder.encode(records))
        return {
            "predictions": [labels[i] for i in probs.argmax(axis=1).tolist()],
            "probabilities": [dict(zip(labels, row)) for row in probs.tolist()],
        }

    sample = df.drop(columns=[target]).head(4).astype(object).where(df.head(4).notna(), None).to_dict("records")
    for _ in range(20):  # warm-up: allocators, torch kernels, numpy paths
        predict(sample[:1])
        predict(sample)

    app = FastAPI()

    @app.post("/predict")
    async def endpoint(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
            records = body["records"]
            if not isinstance(records, list) or not records:
                raise ValueError("records must be a non-empty list")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            return Response(orjson.dumps({"error": str(exc)}), 422, media_type="application/json")
        return Response(orjson.dumps(predict(records)), media_type="application/json")

    return app


def bare_app() -> Any:
    import orjson
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def predict(request: Request) -> Response:
        body = orjson.loads(await request.body())
        n = len(body.get("records", []))
        return Response(orjson.dumps({"predictions": ["x"] * n}), media_type="application/json")

    return Starlette(routes=[Route("/predict", predict, methods=["POST"])])


def main() -> None:
    import uvicorn

    p = argparse.ArgumentParser()
    p.add_argument("--kind", choices=["baseline", "bare"], default="baseline")
    p.add_argument("--data", default="builtin:breast_cancer")
    p.add_argument("--model", choices=["linear", "mlp"], default="linear")
    p.add_argument("--hidden", default="128,64", help="MLP hidden sizes (with --model mlp)")
    p.add_argument("--port", type=int, default=9001)
    p.add_argument("--access-log", action="store_true")
    args = p.parse_args()
    app = (baseline_app(args.data, args.model, [int(h) for h in args.hidden.split(",")]) if args.kind == "baseline"
           else bare_app())
    uvicorn.run(app, host="127.0.0.1", port=args.port, access_log=args.access_log, log_level="warning")


if __name__ == "__main__":
    main()
