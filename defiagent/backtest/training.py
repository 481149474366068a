"""Training the model-driven example strategy (`model-classifier`) on recorded history.

`defiagent strategy train -c agent.toml --data DIR --strategy NAME` fits a small
scikit-learn classifier that predicts, from the last `lookback` log returns of the pool's
spot price, whether the price is higher `horizon` ticks later; and writes it as a JSON
model file (plain numbers, no pickle: the strategy reads it inside its sandbox without
scikit-learn, and nothing in it can run code). The file is the strategy's `model` param
and one of its `files`, so its digest is in the strategy's pin: a retrained model is a
new pin, and needs a new backtest certificate.

The model file also keeps how it was trained (`spec`), so the walk-forward gate can train
the same kind of model again on each training window alone.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from defiagent.errors import ConfigError, Refused
from defiagent.market.history import MarketHistory
from defiagent.operator.files import write_atomic

MIN_SAMPLES = 20


class ModelSpec(BaseModel):
    """How to train: the kind of classifier and its features."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["logistic", "tree"] = "logistic"
    lookback: int = Field(default=5, ge=1, le=200, description="log returns as features")
    horizon: int = Field(default=1, ge=1, le=100, description="ticks ahead to predict")
    regularization: float = Field(
        default=1.0, gt=0, description="logistic: inverse strength C (larger fits harder)"
    )
    max_depth: int = Field(default=3, ge=0, le=64, description="tree: 0 means unlimited")
    min_leaf: int = Field(default=20, ge=1, description="tree: fewest samples in a leaf")


class TrainedModel(BaseModel):
    """The model file's content."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["defiagent-model/1"] = "defiagent-model/1"
    spec: ModelSpec
    base: str
    quote: str
    trained_on: dict[str, Any]  # data hash, blocks, ticks, samples
    accuracy: float  # on the training samples (in-sample: not evidence of anything)
    # logistic: P(up) = 1 / (1 + exp(-(intercept + coef . (x - mean) / scale)))
    coef: list[float] = []
    intercept: float = 0.0
    mean: list[float] = []
    scale: list[float] = []
    # tree: node i is [feature, threshold, left, right, p_up]; a leaf has feature -1
    nodes: list[list[float]] = []


def spot_prices(history: MarketHistory, base: str, quote: str) -> list[float]:
    """Whole `quote` per whole `base` at each tick, from the direct pool (as the strategy
    sees it: `MarketSnapshot.spot_price`)."""
    base_l, quote_l = base.lower(), quote.lower()
    for series in history.pools.values():
        t0, t1 = series.start.token0, series.start.token1
        pair = {t0.address.lower(), t1.address.lower()}
        if pair != {base_l, quote_l}:
            continue
        base_first = t0.address.lower() == base_l
        tb, tq = (t0, t1) if base_first else (t1, t0)
        out = []
        for r0, r1 in zip(series.reserve0, series.reserve1, strict=True):
            r_base, r_quote = (r0, r1) if base_first else (r1, r0)
            out.append((r_quote / 10**tq.decimals) / (r_base / 10**tb.decimals))
        return out
    raise ConfigError(f"the market history has no pool of {base} and {quote}")


def features(prices: list[float], t: int, lookback: int) -> list[float]:
    """The last `lookback` log returns up to tick t, the most recent first (the strategy
    computes exactly this from the spot prices it has seen)."""
    return [math.log(prices[t - j] / prices[t - j - 1]) for j in range(lookback)]


def samples(
    prices: list[float], spec: ModelSpec, start: int, end: int
) -> tuple[list[list[float]], list[int]]:
    """Features and labels whose prices all lie in ticks [start, end): nothing after."""
    xs, ys = [], []
    for t in range(start + spec.lookback, end - spec.horizon):
        xs.append(features(prices, t, spec.lookback))
        ys.append(1 if prices[t + spec.horizon] > prices[t] else 0)
    return xs, ys


def train(
    history: MarketHistory,
    base: str,
    quote: str,
    spec: ModelSpec,
    *,
    start: int = 0,
    end: int | None = None,
) -> TrainedModel:
    """Fit on ticks [start, end) only; Refused when the window has too little to learn from."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    end = len(history) if end is None else end
    prices = spot_prices(history, base, quote)
    xs, ys = samples(prices, spec, start, end)
    if len(xs) < MIN_SAMPLES or len(set(ys)) < 2:
        raise Refused(
            f"ticks {start}-{end} give {len(xs)} training samples with "
            f"{len(set(ys))} outcome(s): too little to train on (record a longer history)"
        )
    x, y = np.asarray(xs), np.asarray(ys)
    trained_on = {
        "data_hash": history.content_hash,
        "from_block": history.blocks[start],
        "to_block": history.blocks[end - 1],
        "ticks": [start, end],
        "samples": len(ys),
    }
    common = {"spec": spec, "base": base, "quote": quote, "trained_on": trained_on}
    if spec.kind == "logistic":
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale[scale == 0] = 1.0
        z = (x - mean) / scale
        clf = LogisticRegression(C=spec.regularization, max_iter=1_000)
        clf.fit(z, y)
        return TrainedModel(
            **common,
            accuracy=float(clf.score(z, y)),
            coef=[float(c) for c in clf.coef_[0]],
            intercept=float(clf.intercept_[0]),
            mean=[float(m) for m in mean],
            scale=[float(s) for s in scale],
        )
    tree = DecisionTreeClassifier(
        max_depth=spec.max_depth or None, min_samples_leaf=spec.min_leaf, random_state=0
    )
    tree.fit(x, y)
    t = tree.tree_
    up = list(tree.classes_).index(1)
    nodes = []
    for i in range(t.node_count):
        counts = t.value[i][0]
        p_up = float(counts[up] / counts.sum())
        if t.children_left[i] == -1:
            nodes.append([-1.0, 0.0, -1.0, -1.0, p_up])
        else:
            nodes.append(
                [
                    float(t.feature[i]),
                    float(t.threshold[i]),
                    float(t.children_left[i]),
                    float(t.children_right[i]),
                    p_up,
                ]
            )
    return TrainedModel(**common, accuracy=float(tree.score(x, y)), nodes=nodes)


def write_model(path: Path, model: TrainedModel) -> str:
    """Write the model file (atomically); returns its sha256, the digest the pin will hold."""
    text = json.dumps(model.model_dump(mode="json"), indent=1, sort_keys=True) + "\n"
    # Readable by the strategy's sandbox user; nothing in it is secret.
    write_atomic(path, text, mode=0o644, what="model file")
    return hashlib.sha256(text.encode()).hexdigest()


def read_model(path: Path) -> TrainedModel:
    try:
        return TrainedModel.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"the model file {path} does not exist: train it first") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(f"{path} is not a model file ({where}: {first['msg']})") from None
