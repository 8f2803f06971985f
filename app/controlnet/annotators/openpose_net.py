"""The OpenPose body network (CMU's 18-keypoint COCO model, as pytorch-openpose and ControlNet port it).

A VGG trunk and six two-branch stages: branch L1 predicts 38 part affinity fields, branch L2 19
keypoint heatmaps (18 parts and the background). The layer names are the weights file's, so
lllyasviel/Annotators' body_pose_model.pth loads as it is. As in the reference, the list of layers
without a ReLU names Mconv7_stage6_L1 twice and Mconv7_stage6_L2 never, so the last heatmap layer
keeps its ReLU.
"""

from __future__ import annotations

from pathlib import Path

_NO_RELU = {
    "conv5_5_CPM_L1", "conv5_5_CPM_L2",
    *(f"Mconv7_stage{i}_L{b}" for i in range(2, 6) for b in (1, 2)),
    "Mconv7_stage6_L1",
}

_TRUNK = (
    ("conv1_1", (3, 64, 3, 1, 1)), ("conv1_2", (64, 64, 3, 1, 1)), ("pool1_stage1", (2, 2, 0)),
    ("conv2_1", (64, 128, 3, 1, 1)), ("conv2_2", (128, 128, 3, 1, 1)), ("pool2_stage1", (2, 2, 0)),
    ("conv3_1", (128, 256, 3, 1, 1)), ("conv3_2", (256, 256, 3, 1, 1)), ("conv3_3", (256, 256, 3, 1, 1)),
    ("conv3_4", (256, 256, 3, 1, 1)), ("pool3_stage1", (2, 2, 0)),
    ("conv4_1", (256, 512, 3, 1, 1)), ("conv4_2", (512, 512, 3, 1, 1)),
    ("conv4_3_CPM", (512, 256, 3, 1, 1)), ("conv4_4_CPM", (256, 128, 3, 1, 1)),
)


def _stage1(branch: int, out: int):
    return (
        (f"conv5_1_CPM_L{branch}", (128, 128, 3, 1, 1)), (f"conv5_2_CPM_L{branch}", (128, 128, 3, 1, 1)),
        (f"conv5_3_CPM_L{branch}", (128, 128, 3, 1, 1)), (f"conv5_4_CPM_L{branch}", (128, 512, 1, 1, 0)),
        (f"conv5_5_CPM_L{branch}", (512, out, 1, 1, 0)),
    )


def _stage(i: int, branch: int, out: int):
    return (
        (f"Mconv1_stage{i}_L{branch}", (185, 128, 7, 1, 3)),
        *((f"Mconv{j}_stage{i}_L{branch}", (128, 128, 7, 1, 3)) for j in range(2, 6)),
        (f"Mconv6_stage{i}_L{branch}", (128, 128, 1, 1, 0)),
        (f"Mconv7_stage{i}_L{branch}", (128, out, 1, 1, 0)),
    )


def _layers(spec):
    from collections import OrderedDict

    import torch.nn as nn

    layers = []
    for name, v in spec:
        if "pool" in name:
            layers.append((name, nn.MaxPool2d(kernel_size=v[0], stride=v[1], padding=v[2])))
            continue
        layers.append((name, nn.Conv2d(v[0], v[1], kernel_size=v[2], stride=v[3], padding=v[4])))
        if name not in _NO_RELU:
            layers.append(("relu_" + name, nn.ReLU(inplace=True)))
    return nn.Sequential(OrderedDict(layers))


def build_body_model():
    """The network; forward(x [1, 3, H, W], BGR / 256 - 0.5) -> (pafs [1, 38, H/8, W/8], heatmaps [1, 19, ...])."""
    import torch
    import torch.nn as nn

    class BodyPoseModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.model0 = _layers(_TRUNK)
            self.model1_1 = _layers(_stage1(1, 38))
            self.model1_2 = _layers(_stage1(2, 19))
            for i in range(2, 7):
                setattr(self, f"model{i}_1", _layers(_stage(i, 1, 38)))
                setattr(self, f"model{i}_2", _layers(_stage(i, 2, 19)))

        def forward(self, x):
            trunk = self.model0(x)
            pafs, heat = self.model1_1(trunk), self.model1_2(trunk)
            for i in range(2, 7):
                both = torch.cat([pafs, heat, trunk], 1)
                pafs, heat = getattr(self, f"model{i}_1")(both), getattr(self, f"model{i}_2")(both)
            return pafs, heat

    return BodyPoseModel()


def load_body_model(path: Path, device: str):
    """The network with the weights of `path`, whose keys lack the block prefix ("conv1_1.weight" for
    model0.conv1_1.weight), as the published file has them; .safetensors or a .pth read with
    weights_only=True."""
    from app.controlnet.annotators.lineart import read_state_dict

    model = build_body_model()
    weights = read_state_dict(path)
    model.load_state_dict({k: weights[k.split(".", 1)[1]] for k in model.state_dict()})
    return model.to(device).eval()
