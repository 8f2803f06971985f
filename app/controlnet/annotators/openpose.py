"""openpose: body keypoints (18, COCO order) found and drawn as sd-webui-controlnet's openpose does.

Its steps (`annotator/openpose`: body.py, util.py): the input at the preprocessor resolution, BGR,
scaled so its height is 184 (one scale, 0.5 x 368), padded to a multiple of 8 with gray 128; the
network's heatmaps and part affinity fields scaled back; peaks over 0.1 after a sigma-3 Gaussian;
limbs scored along their affinity field; people kept with at least 4 parts and a mean score of 0.4;
drawn as coloured ellipses (60 % brightness) and dots on black. Only the body (the hand and face
networks of openpose_hand/_face/_full are not here). scipy's gaussian_filter is computed with the
same kernel by OpenCV (reflected borders, radius 12).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from app.controlnet.annotators.base import AnnotatorCall, WeightNeed, WeightOption
from app.controlnet.preprocess_sizing import resize_with_pad

WEIGHTS = WeightNeed((
    WeightOption("openpose", ("body_pose_model.safetensors",), "lllyasviel/Annotators"),
    WeightOption("openpose", ("body_pose_model.pth",), "lllyasviel/Annotators"),
))

# Limbs as pairs of 1-based keypoints, and the PAF channels (+19) of each, in the reference's order.
LIMBS = ((2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12), (12, 13),
         (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18), (3, 17), (6, 18))
PAF_CHANNELS = ((31, 32), (39, 40), (33, 34), (35, 36), (41, 42), (43, 44), (19, 20), (21, 22), (23, 24),
                (25, 26), (27, 28), (29, 30), (47, 48), (49, 50), (53, 54), (51, 52), (55, 56), (37, 38),
                (45, 46))
COLORS = ((255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
          (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
          (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85))


def _resize(x: np.ndarray, width: int, height: int) -> np.ndarray:
    """The reference's smart_resize: area down, Lanczos up, channel by channel beyond 3."""
    import cv2

    if x.ndim == 3 and x.shape[2] not in (1, 3):
        return np.stack([_resize(x[:, :, i], width, height) for i in range(x.shape[2])], axis=2)
    k = float(height + width) / float(x.shape[0] + x.shape[1])
    return cv2.resize(x, (int(width), int(height)), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LANCZOS4)


def _resize_k(x: np.ndarray, f: float) -> np.ndarray:
    return _resize(x, x.shape[1] * f, x.shape[0] * f)


def gaussian_filter(x: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    """scipy.ndimage.gaussian_filter(x, sigma) (truncate 4, mode "reflect")."""
    import cv2

    radius = int(4.0 * sigma + 0.5)
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 / (sigma * sigma) * t * t)
    kernel /= kernel.sum()
    return cv2.sepFilter2D(x.astype(np.float64), -1, kernel, kernel, borderType=cv2.BORDER_REFLECT)


def network_maps(model, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(heatmaps [h, w, 19], pafs [h, w, 38]) of a BGR uint8 picture."""
    import torch

    stride, box, pad_value = 8, 368, 128
    scaled = _resize_k(bgr, 0.5 * box / bgr.shape[0])
    pad_down = 0 if scaled.shape[0] % stride == 0 else stride - scaled.shape[0] % stride
    pad_right = 0 if scaled.shape[1] % stride == 0 else stride - scaled.shape[1] % stride
    padded = np.pad(scaled, [[0, pad_down], [0, pad_right], [0, 0]], constant_values=pad_value)
    x = np.ascontiguousarray(np.transpose(np.float32(padded[:, :, :, None]), (3, 2, 0, 1)) / 256 - 0.5)
    param = next(model.parameters())
    with torch.no_grad():
        pafs, heat = model(torch.from_numpy(x).float().to(param.device, param.dtype))

    def back(out) -> np.ndarray:
        m = _resize_k(np.transpose(np.squeeze(out.float().cpu().numpy()), (1, 2, 0)), stride)
        m = m[:padded.shape[0] - pad_down, :padded.shape[1] - pad_right, :]
        return _resize(m, bgr.shape[1], bgr.shape[0])

    return back(heat).astype(np.float64), back(pafs).astype(np.float64)


def find_peaks(heatmaps: np.ndarray, threshold: float = 0.1) -> list[list[tuple]]:
    """Per part, its peaks as (x, y, score, id), ids numbered across parts."""
    all_peaks, counter = [], 0
    for part in range(18):
        raw = heatmaps[:, :, part]
        smooth = gaussian_filter(raw, sigma=3)
        left, right, up, down = (np.zeros(smooth.shape) for _ in range(4))
        left[1:, :] = smooth[:-1, :]
        right[:-1, :] = smooth[1:, :]
        up[:, 1:] = smooth[:, :-1]
        down[:, :-1] = smooth[:, 1:]
        binary = np.logical_and.reduce((smooth >= left, smooth >= right, smooth >= up, smooth >= down,
                                        smooth > threshold))
        ys, xs = np.nonzero(binary)
        peaks = [(x, y, raw[y, x], counter + i) for i, (x, y) in enumerate(zip(xs, ys))]
        all_peaks.append(peaks)
        counter += len(peaks)
    return all_peaks


def _connections(all_peaks, pafs: np.ndarray, height: int, threshold: float = 0.05, samples: int = 10):
    """Per limb, the accepted connections [idA, idB, score, i, j], or None where a side has no peak."""
    result = []
    for (a, b), channels in zip(LIMBS, PAF_CHANNELS):
        field = pafs[:, :, [c - 19 for c in channels]]
        cand_a, cand_b = all_peaks[a - 1], all_peaks[b - 1]
        if not cand_a or not cand_b:
            result.append(None)
            continue
        scored = []
        for i, pa in enumerate(cand_a):
            for j, pb in enumerate(cand_b):
                vec = np.subtract(pb[:2], pa[:2])
                norm = max(0.001, math.sqrt(vec[0] * vec[0] + vec[1] * vec[1]))
                vec = np.divide(vec, norm)
                points = list(zip(np.linspace(pa[0], pb[0], num=samples), np.linspace(pa[1], pb[1], num=samples)))
                vx = np.array([field[int(round(p[1])), int(round(p[0])), 0] for p in points])
                vy = np.array([field[int(round(p[1])), int(round(p[0])), 1] for p in points])
                along = np.multiply(vx, vec[0]) + np.multiply(vy, vec[1])
                score = sum(along) / len(along) + min(0.5 * height / norm - 1, 0)
                if len(np.nonzero(along > threshold)[0]) > 0.8 * len(along) and score > 0:
                    scored.append([i, j, score, score + pa[2] + pb[2]])
        scored.sort(key=lambda c: c[2], reverse=True)
        connection = np.zeros((0, 5))
        for i, j, s, _ in scored:
            if i not in connection[:, 3] and j not in connection[:, 4]:
                connection = np.vstack([connection, [cand_a[i][3], cand_b[j][3], s, i, j]])
                if len(connection) >= min(len(cand_a), len(cand_b)):
                    break
        result.append(connection)
    return result


def group_people(all_peaks, pafs: np.ndarray, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(candidate [n, 4]: x, y, score, id; subset [people, 20]: 18 candidate indices or -1, total
    score, part count), the reference's greedy assembly of limbs into people."""
    connection_all = _connections(all_peaks, pafs, height)
    subset = -1 * np.ones((0, 20))
    candidate = np.array([item for sublist in all_peaks for item in sublist])
    for k, connection in enumerate(connection_all):
        if connection is None:
            continue
        part_as, part_bs = connection[:, 0], connection[:, 1]
        index_a, index_b = np.array(LIMBS[k]) - 1
        for i in range(len(connection)):
            found, where = 0, [-1, -1]
            for j in range(len(subset)):
                if subset[j][index_a] == part_as[i] or subset[j][index_b] == part_bs[i]:
                    where[found] = j
                    found += 1
            if found == 1:
                j = where[0]
                if subset[j][index_b] != part_bs[i]:
                    subset[j][index_b] = part_bs[i]
                    subset[j][-1] += 1
                    subset[j][-2] += candidate[part_bs[i].astype(int), 2] + connection[i][2]
            elif found == 2:
                j1, j2 = where
                membership = ((subset[j1] >= 0).astype(int) + (subset[j2] >= 0).astype(int))[:-2]
                if len(np.nonzero(membership == 2)[0]) == 0:
                    subset[j1][:-2] += subset[j2][:-2] + 1
                    subset[j1][-2:] += subset[j2][-2:]
                    subset[j1][-2] += connection[i][2]
                    subset = np.delete(subset, j2, 0)
                else:
                    subset[j1][index_b] = part_bs[i]
                    subset[j1][-1] += 1
                    subset[j1][-2] += candidate[part_bs[i].astype(int), 2] + connection[i][2]
            elif not found and k < 17:
                row = -1 * np.ones(20)
                row[index_a] = part_as[i]
                row[index_b] = part_bs[i]
                row[-1] = 2
                row[-2] = sum(candidate[connection[i, :2].astype(int), 2]) + connection[i][2]
                subset = np.vstack([subset, row])
    keep = [i for i in range(len(subset)) if not (subset[i][-1] < 4 or subset[i][-2] / subset[i][-1] < 0.4)]
    return candidate, subset[keep]


def people_keypoints(candidate: np.ndarray, subset: np.ndarray, width: int, height: int):
    """Per person, 18 keypoints as (x / width, y / height) or None, as the reference normalises them."""
    return [[(candidate[c][0] / float(width), candidate[c][1] / float(height)) if c != -1 else None
             for c in person[:18].astype(int)] for person in subset]


def draw_bodies(people, height: int, width: int) -> np.ndarray:
    """The pose map: limbs then joints of every person on black (the reference's draw_bodypose)."""
    import cv2

    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    for keypoints in people:
        present = [k for k in keypoints if k is not None]
        normalized = bool(present) and all(0 <= abs(x) <= 1 and 0 <= abs(y) <= 1 for x, y in present)
        h, w = (height, width) if normalized else (1.0, 1.0)
        for (a, b), color in zip(LIMBS[:17], COLORS):
            k1, k2 = keypoints[a - 1], keypoints[b - 1]
            if k1 is None or k2 is None:
                continue
            ys = np.array([k1[0], k2[0]]) * float(w)
            xs = np.array([k1[1], k2[1]]) * float(h)
            length = ((xs[0] - xs[1]) ** 2 + (ys[0] - ys[1]) ** 2) ** 0.5
            angle = math.degrees(math.atan2(xs[0] - xs[1], ys[0] - ys[1]))
            polygon = cv2.ellipse2Poly((int(np.mean(ys)), int(np.mean(xs))), (int(length / 2), 4), int(angle),
                                       0, 360, 1)
            cv2.fillConvexPoly(canvas, polygon, [int(float(c) * 0.6) for c in color])
        for keypoint, color in zip(keypoints, COLORS):
            if keypoint is not None:
                cv2.circle(canvas, (int(keypoint[0] * w), int(keypoint[1] * h)), 4, color, thickness=-1)
    return canvas


def openpose(image: np.ndarray, call: AnnotatorCall) -> np.ndarray:
    """Pose map uint8 [h, w, 3] at the preprocessor resolution."""
    from app.controlnet.annotators.openpose_net import load_body_model

    option = WEIGHTS.found(call.annotators_dir)
    assert option is not None, "Preprocessor.run checks the weights first"
    path = Path(call.annotators_dir) / option.folder / option.files[0]
    model = call.model(("openpose_body", str(path)), lambda: load_body_model(path, call.device))
    padded, remove_pad = resize_with_pad(image, call.resolution)
    bgr = np.ascontiguousarray(padded[:, :, ::-1])
    height, width = bgr.shape[:2]
    heatmaps, pafs = network_maps(model, bgr)
    candidate, subset = group_people(find_peaks(heatmaps), pafs, height)
    return remove_pad(draw_bodies(people_keypoints(candidate, subset, width, height), height, width))
