"""The Space of the ``static_dynamic_bias`` evaluate module: paste or upload pooled features, get the reading.

A small ``gr.Blocks`` page of its own: evaluate's ``launch_gradio_widget`` (the stock metric-Space app) uses
``gr.inputs``, which Gradio 5+ no longer has. The metric is loaded from the script next to this file, so the
page computes exactly what ``evaluate.load("<owner>/static_dynamic_bias")`` computes.

Inputs: JSON ``{"features_a": [[...], ...], "features_b": [[...], ...], "factors": ["static", "dynamic", ...]}``
(N pairs of C pooled features each), typed in or uploaded as a ``.json`` / ``.npz`` file (arrays of those
names). Run locally: ``python app.py`` then open http://127.0.0.1:7860.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported

import json
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "static_dynamic_bias.py"
_METRIC: Any = None


def metric():
    """The evaluate module of this folder (loaded once; by its script path, so a folder named ``app`` works)."""
    global _METRIC
    if _METRIC is None:
        import evaluate

        _METRIC = evaluate.load(str(SCRIPT), keep_in_memory=True)
    return _METRIC


def example_json(num_pairs: int = 40, channels: int = 8, seed: int = 0) -> str:
    """A synthetic input: dynamic pairs share 80 % of their variance, static pairs 20 % (a motion-leaning layer)."""
    rng = np.random.default_rng(seed)
    factors = ["dynamic", "static"] * (num_pairs // 2)
    shared = np.where(np.array(factors)[:, None] == "dynamic", 0.8, 0.2) ** 0.5
    base = rng.normal(size=(len(factors), channels))
    za = shared * base + (1 - shared**2) ** 0.5 * rng.normal(size=base.shape)
    zb = shared * base + (1 - shared**2) ** 0.5 * rng.normal(size=base.shape)
    doc = {"features_a": np.round(za, 4).tolist(), "features_b": np.round(zb, 4).tolist(), "factors": factors}
    return json.dumps(doc)


def _inputs(text: str | None, file: str | None) -> dict[str, Any]:
    if file:
        path = Path(file)
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as z:
                missing = [k for k in ("features_a", "features_b", "factors") if k not in z.files]
                if missing:
                    raise gr.Error(
                        f"{path.name} has no array {missing[0]!r}; it needs features_a, features_b, factors."
                    )
                return {k: z[k].tolist() for k in ("features_a", "features_b", "factors")}
        text = path.read_text(encoding="utf-8")
    if not text or not text.strip():
        raise gr.Error("no input: paste the JSON, upload a .json/.npz file, or press 'Example'.")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise gr.Error(f"the input is not valid JSON ({e.msg} at line {e.lineno}).") from None
    if not isinstance(doc, dict) or not {"features_a", "features_b", "factors"} <= set(doc):
        raise gr.Error('the JSON needs the keys "features_a", "features_b" and "factors".')
    return {k: doc[k] for k in ("features_a", "features_b", "factors")}


def compute(text: str | None, file: str | None, threshold: float, num_chunks: int) -> tuple[str, dict[str, Any]]:
    """``(markdown summary, result dict without the per-channel arrays)``; bad inputs give one-line ``gr.Error`` s."""
    inputs = _inputs(text, file)
    try:
        out = metric().compute(**inputs, threshold=float(threshold), num_chunks=int(num_chunks), include_channels=False)
    except ValueError as e:
        raise gr.Error(str(e).splitlines()[0]) from None
    iv = out["intervals"]
    rows = ["| quantity | value | 95 % interval |", "|---|---|---|"]
    for key, label in (("s_dynamic", "s_D"), ("s_static", "s_S")):
        lo, hi = iv[key]["low"], iv[key]["high"]
        rows.append(f"| {label} | {out[key]:.3f} | [{lo:.3f}, {hi:.3f}] |")
    for factor in ("dynamic", "static"):
        share = iv.get(f"percent_{factor}") or {}
        rng = f"[{share.get('low', float('nan')):.1f}, {share.get('high', float('nan')):.1f}]" if share else ""
        rows.append(f"| {factor} share % | {100 * out['share'][factor]:.1f} | {rng} |")
    note = f"\n\n{out['intervals_note']}" if out.get("intervals_note") else ""
    pairs = out["num_pairs"]
    head = f"**{pairs.get('dynamic', 0)} dynamic and {pairs.get('static', 0)} static pairs.**\n\n"
    return head + "\n".join(rows) + note, out


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="static_dynamic_bias", analytics_enabled=False) as demo:
        gr.Markdown(
            "# static_dynamic_bias\n\nHow much **static** (appearance) vs **dynamic** (motion) information a video "
            "model layer encodes (Kowal et al., TPAMI, arXiv:2211.01783), from the pooled features of both members "
            "of static and dynamic pairs. The same numbers in Python: "
            '`evaluate.load("<this Space>").compute(features_a=..., features_b=..., factors=...)`.'
        )
        with gr.Row():
            with gr.Column():
                text = gr.Code(label="Inputs (JSON)", language="json", lines=8)
                file = gr.File(label="or a .json / .npz file", file_types=[".json", ".npz"], type="filepath")
                threshold = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="threshold (tau of the channel categories)")
                num_chunks = gr.Slider(2, 20, value=10, step=1, label="jackknife chunks")
                with gr.Row():
                    example = gr.Button("Example")
                    run = gr.Button("Compute", variant="primary")
            with gr.Column():
                summary = gr.Markdown()
                result = gr.JSON(label="Result")
        example.click(lambda: example_json(), outputs=text)
        run.click(compute, inputs=[text, file, threshold, num_chunks], outputs=[summary, result], api_name="compute")
    return demo


demo = build_demo()

if __name__ == "__main__":
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), show_error=True)
