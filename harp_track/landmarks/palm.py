"""MediaPipe's palm detector (palm_detection_full, converted to ONNX) with its SSD decoding, as
configured in palm_detection_cpu.pbtxt of mediapipe 0.10.21."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

INPUT_SIZE = 192
# SsdAnchorsCalculator options: 4 layers on strides 8, 16, 16, 16, two fixed-size anchors per
# cell and layer; layers of equal stride share one grid → 24²·2 + 12²·6 = 2016 anchors.
STRIDES = (8, 16, 16, 16)
ANCHORS_PER_LAYER = 2
NUM_KEYPOINTS = 7
WRIST_KEYPOINT, MIDDLE_MCP_KEYPOINT = 0, 2
SCORE_CLIP = 100.0
NMS_IOU = 0.3


def ssd_anchors() -> np.ndarray:
    """(2016, 2) anchor centres in the 192² input, normalized to [0, 1]."""
    centres = []
    layer = 0
    while layer < len(STRIDES):
        stride = STRIDES[layer]
        repeats = 0
        while layer < len(STRIDES) and STRIDES[layer] == stride:
            repeats += ANCHORS_PER_LAYER
            layer += 1
        cells = INPUT_SIZE // stride
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells,
                             indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], 1)
        centres.append(np.repeat(grid, repeats, axis=0))
    return np.concatenate(centres).astype(np.float32)


@dataclasses.dataclass
class PalmDetection:
    """A palm in image pixels: box (x0, y0, x1, y1), 7 keypoints (7, 2), score in [0, 1]."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float


class PalmDetector:
    """Runs the palm model on a letterboxed 192² view of the whole frame."""

    def __init__(self, session, min_score: float = 0.5) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name
        # Outputs sorted by name: Identity = (1, 2016, 18) boxes+keypoints, Identity_1 = scores.
        self.output_names = sorted(o.name for o in session.get_outputs())
        self.anchors = ssd_anchors()
        self.min_score = min_score
        self._tensor = np.empty((1, INPUT_SIZE, INPUT_SIZE, 3), np.float32)

    def detect(self, image_rgb: np.ndarray) -> list[PalmDetection]:
        """Palms in an H×W×3 uint8 RGB image, best first."""
        height, width = image_rgb.shape[:2]
        # Letterbox: uniform scale, centred, zero padding (MediaPipe's keep_aspect_ratio), applied
        # to pixel indices as MediaPipe's OpenCV crop does.
        scale = INPUT_SIZE / max(width, height)
        offset = np.array([(INPUT_SIZE - width * scale) / 2, (INPUT_SIZE - height * scale) / 2])
        to_input = np.array([[scale, 0, offset[0]], [0, scale, offset[1]]])
        view = cv2.warpAffine(image_rgb, to_input, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        np.multiply(view, np.float32(1 / 255), out=self._tensor[0], casting="unsafe")
        raw, logits = self.session.run(self.output_names, {self.input_name: self._tensor})
        scores = 1 / (1 + np.exp(-np.clip(logits[0, :, 0], -SCORE_CLIP, SCORE_CLIP)))
        keep = np.flatnonzero(scores >= self.min_score)
        if keep.size == 0:
            return []
        raw = raw[0, keep] / INPUT_SIZE
        anchors = self.anchors[keep]
        centre = raw[:, :2] + anchors
        half = raw[:, 2:4] / 2
        boxes = np.concatenate([centre - half, centre + half], 1)
        keypoints = raw[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) + anchors[:, None]
        boxes, keypoints, kept_scores = weighted_nms(boxes, keypoints, scores[keep])
        # Normalized letterboxed coordinates → image pixels.
        boxes = (boxes * INPUT_SIZE - np.tile(offset, 2)) / scale
        keypoints = (keypoints * INPUT_SIZE - offset) / scale
        return [PalmDetection(b, k, float(s)) for b, k, s in zip(boxes, keypoints, kept_scores)]


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's weighted non-maximum suppression: each cluster of boxes overlapping the best
    remaining one (IoU > 0.3) becomes their score-weighted mean, keeping the best score."""
    order = np.argsort(-scores)
    out_boxes, out_keypoints, out_scores = [], [], []
    while order.size:
        best = boxes[order[0]]
        x0 = np.maximum(best[0], boxes[order, 0])
        y0 = np.maximum(best[1], boxes[order, 1])
        x1 = np.minimum(best[2], boxes[order, 2])
        y1 = np.minimum(best[3], boxes[order, 3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        areas = (boxes[order, 2] - boxes[order, 0]) * (boxes[order, 3] - boxes[order, 1])
        overlap = inter / (areas + (best[2] - best[0]) * (best[3] - best[1]) - inter)
        cluster = order[overlap > NMS_IOU]
        weights = scores[cluster] / scores[cluster].sum()
        out_boxes.append(weights @ boxes[cluster])
        out_keypoints.append(np.tensordot(weights, keypoints[cluster], 1))
        out_scores.append(scores[order[0]])
        order = order[overlap <= NMS_IOU]
    return np.array(out_boxes), np.array(out_keypoints), np.array(out_scores)
