"""Hand model benchmark: forward and forward+backward of the LBS layer.

    python -m benchmarks.hand_model
Targets on a 2-core CPU: batch-1 forward under 1 ms, forward+backward under 3 ms.
"""

from __future__ import annotations

import torch

import harp_track as ht
from benchmarks.timing import machine_description, markdown_table, median_ms


def run(devices: list[str] | None = None) -> str:
    """Markdown table of median times (ms) for the open model, batch 1 and 64, per device."""
    devices = devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    rows = []
    default_threads = torch.get_num_threads()
    for device, threads in [(d, t) for d in devices for t in ((1, default_threads) if d == "cpu" else (default_threads,))]:
        torch.set_num_threads(threads)  # the tracker runs with 1 (see Tracker's torch_threads)
        model = ht.load_hand_model(device=device)
        for batch in (1, 64):
            g = torch.Generator().manual_seed(0)
            inputs = dict(global_orient=torch.randn(batch, 3, generator=g), transl=torch.zeros(batch, 3),
                          pose=0.3 * torch.randn(batch, model.num_pose_joints, 3, generator=g),
                          shape=torch.randn(batch, model.num_shape, generator=g))
            inputs = {k: v.to(device) for k, v in inputs.items()}
            with torch.no_grad():
                forward = median_ms(lambda: model(**inputs), repeats=100, device=device)
            grad_inputs = {k: v.clone().requires_grad_() for k, v in inputs.items()}

            def step():
                out = model(**grad_inputs)
                (out.vertices.sum() + out.keypoints.sum()).backward()

            backward = median_ms(step, repeats=50, device=device)
            rows.append([device, threads, model.name, model.num_vertices, batch, forward, backward])
    torch.set_num_threads(default_threads)
    return markdown_table(["device", "torch threads", "model", "vertices", "batch", "forward ms",
                           "forward+backward ms"], rows)


def main() -> None:
    print(machine_description())
    print(run())


if __name__ == "__main__":
    main()
