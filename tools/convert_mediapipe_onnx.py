"""Convert MediaPipe's hand landmark and palm detection TFLite models to ONNX.

Run once, in a throwaway virtual environment (TensorFlow must never enter the project's venv):

    python3.11 -m venv /tmp/convvenv
    /tmp/convvenv/bin/pip install tf2onnx==1.17.0 tensorflow-cpu==2.21.0 onnx==1.23.2 onnxruntime==1.32.0
    /tmp/convvenv/bin/python tools/convert_mediapipe_onnx.py \
        --modules .venv/lib/python3.11/site-packages/mediapipe/modules --out models/onnx

`--modules` is the `mediapipe/modules` folder of an installed mediapipe==0.10.21 wheel. The
TFLite models keep their weights as float16 behind DEQUANTIZE ops; tf2onnx folds those into
float32 initializers, doubling the file. We store every initializer whose values are exactly
float16 numbers as float16 followed by a Cast to float32: the same numbers reach the network, so
the outputs are unchanged (checked below), and ONNX Runtime folds the Casts when it loads the model.
The script then compares ONNX Runtime against the TFLite interpreter on random and constant inputs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

MODELS = {
    "hand_landmark_full": "hand_landmark/hand_landmark_full.tflite",
    "palm_detection_full": "palm_detection/palm_detection_full.tflite",
}
OPSET = 17
# Smaller initializers (shapes, scalars) stay float32: they are not worth a Cast node.
MIN_FP16_ELEMENTS = 16


def convert(tflite_path: Path, onnx_path: Path) -> None:
    """tflite → onnx with tf2onnx (float32 initializers)."""
    subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--tflite", str(tflite_path),
                    "--output", str(onnx_path), "--opset", str(OPSET)], check=True)


def store_exact_float16(src: Path, dst: Path) -> int:
    """Rewrite float32 initializers that are exactly representable in float16 as float16 + Cast.
    Returns how many initializers were rewritten."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    kept, casts, rewritten = [], [], 0
    for init in graph.initializer:
        values = numpy_helper.to_array(init)
        exact = (values.dtype == np.float32 and values.size >= MIN_FP16_ELEMENTS
                 and np.array_equal(values.astype(np.float16).astype(np.float32), values))
        if not exact:
            kept.append(init)
            continue
        half_name = init.name + "__fp16"
        kept.append(numpy_helper.from_array(values.astype(np.float16), half_name))
        casts.append(helper.make_node("Cast", [half_name], [init.name], to=onnx.TensorProto.FLOAT,
                                      name=init.name + "__cast"))
        rewritten += 1
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)  # Casts first keeps the graph topologically sorted.
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return rewritten


def compare(tflite_path: Path, onnx_paths: list[Path], seed: int = 0) -> list[list[tuple[str, float, float]]]:
    """Per ONNX file and output: (name, largest |TFLite − ONNX Runtime|, largest |TFLite value|), on
    8 random inputs in [0, 1] plus all-zero and all-one images."""
    import onnxruntime as ort
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(tflite_path))
    interpreter.allocate_tensors()
    input_detail = interpreter.get_input_details()[0]
    output_details = sorted(interpreter.get_output_details(), key=lambda d: d["name"])
    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in onnx_paths]
    rng = np.random.default_rng(seed)
    shape = tuple(input_detail["shape"])
    inputs = [rng.random(shape, dtype=np.float32) for _ in range(8)]
    inputs += [np.zeros(shape, np.float32), np.ones(shape, np.float32)]
    diff = np.zeros((len(sessions), len(output_details)))
    scale = np.zeros(len(output_details))
    for x in inputs:
        interpreter.set_tensor(input_detail["index"], x)
        interpreter.invoke()
        expected = [interpreter.get_tensor(d["index"]) for d in output_details]
        scale = np.maximum(scale, [np.abs(e).max() for e in expected])
        for i, session in enumerate(sessions):
            names = sorted(o.name for o in session.get_outputs())
            got = session.run(names, {session.get_inputs()[0].name: x})
            diff[i] = np.maximum(diff[i], [np.abs(e - g.reshape(e.shape)).max() for e, g in zip(expected, got)])
    return [[(d["name"], float(diff[i, j]), float(scale[j])) for j, d in enumerate(output_details)]
            for i in range(len(sessions))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modules", type=Path, required=True,
                        help="the mediapipe/modules folder of the installed mediapipe 0.10.21 wheel")
    parser.add_argument("--out", type=Path, default=Path("models/onnx"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, rel in MODELS.items():
            tflite_path = args.modules / rel
            plain = Path(tmp) / f"{name}.onnx"
            final = args.out / f"{name}.onnx"
            convert(tflite_path, plain)
            rewritten = store_exact_float16(plain, final)
            plain_cmp, final_cmp = compare(tflite_path, [plain, final])
            print(f"{final}: {final.stat().st_size / 1e6:.2f} MB ({rewritten} float16 initializers; "
                  f"float32-only conversion {plain.stat().st_size / 1e6:.2f} MB)")
            for (out, d16, scale), (_, d32, _) in zip(final_cmp, plain_cmp):
                print(f"  {out}: max |TFLite - ONNX| {d16:.2e} (float32-only conversion {d32:.2e}); "
                      f"max |value| {scale:.3g}")

if __name__ == "__main__":
    main()
