"""Official checkpoints into our models through `load_weights`: Megvii YOLOX (`yolox_nano.pth` .. `yolox_x.pth`)
and XuJiacong PIDNet (ImageNet and Cityscapes). The official names and shapes are derived here from the
official module trees (Megvii-BaseDetection/YOLOX `network_blocks.py`, `darknet.py`, `yolo_pafpn.py`,
`yolo_head.py`; XuJiacong/PIDNet `models/pidnet.py`, `models/model_utils.py`, `utils/utils.py` FullModel),
written out from their naming rules, not from our modules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainer.components import load_builtin_components
from trainer.models.build import build_model
from trainer.models.full.pidnet import PIDNet
from trainer.models.weights import WeightsError, load_weights

load_builtin_components()
Shapes = dict[str, tuple[int, ...]]


# --- YOLOX: official module tree -> {name: shape} -------------------------------------------------------------


def _bn(p: str, c: int) -> Shapes:
    return {f"{p}.weight": (c,), f"{p}.bias": (c,), f"{p}.running_mean": (c,), f"{p}.running_var": (c,),
            f"{p}.num_batches_tracked": ()}


def _base_conv(p: str, cin: int, cout: int, k: int, groups: int = 1) -> Shapes:
    return {f"{p}.conv.weight": (cout, cin // groups, k, k), **_bn(f"{p}.bn", cout)}


def _conv(p: str, cin: int, cout: int, k: int, depthwise: bool) -> Shapes:
    if not depthwise:
        return _base_conv(p, cin, cout, k)
    return {**_base_conv(f"{p}.dconv", cin, cin, k, groups=cin), **_base_conv(f"{p}.pconv", cin, cout, 1)}


def _csp_layer(p: str, cin: int, cout: int, n: int, depthwise: bool) -> Shapes:
    hidden = int(cout * 0.5)
    shapes = {**_base_conv(f"{p}.conv1", cin, hidden, 1), **_base_conv(f"{p}.conv2", cin, hidden, 1),
              **_base_conv(f"{p}.conv3", 2 * hidden, cout, 1)}
    for i in range(n):  # Bottleneck(hidden, hidden, expansion=1.0)
        shapes |= _base_conv(f"{p}.m.{i}.conv1", hidden, hidden, 1) | _conv(f"{p}.m.{i}.conv2", hidden, hidden, 3,
                                                                            depthwise)
    return shapes


def _darknet(p: str, depth: float, width: float, dw: bool) -> Shapes:
    b, n = int(width * 64), max(round(depth * 3), 1)
    shapes = _base_conv(f"{p}.stem.conv", 3 * 4, b, 3)  # Focus
    for i, (cin, cout, repeat) in enumerate([(b, 2 * b, n), (2 * b, 4 * b, 3 * n), (4 * b, 8 * b, 3 * n)], start=2):
        shapes |= _conv(f"{p}.dark{i}.0", cin, cout, 3, dw) | _csp_layer(f"{p}.dark{i}.1", cout, cout, repeat, dw)
    shapes |= _conv(f"{p}.dark5.0", 8 * b, 16 * b, 3, dw)
    shapes |= _base_conv(f"{p}.dark5.1.conv1", 16 * b, 8 * b, 1) | _base_conv(f"{p}.dark5.1.conv2", 32 * b, 16 * b, 1)
    return shapes | _csp_layer(f"{p}.dark5.2", 16 * b, 16 * b, n, dw)


def _pafpn(p: str, depth: float, width: float, dw: bool) -> Shapes:
    c0, c1, c2 = (int(c * width) for c in (256, 512, 1024))
    n = round(3 * depth)
    return (_darknet(f"{p}.backbone", depth, width, dw) | _base_conv(f"{p}.lateral_conv0", c2, c1, 1)
            | _csp_layer(f"{p}.C3_p4", 2 * c1, c1, n, dw) | _base_conv(f"{p}.reduce_conv1", c1, c0, 1)
            | _csp_layer(f"{p}.C3_p3", 2 * c0, c0, n, dw) | _conv(f"{p}.bu_conv2", c0, c0, 3, dw)
            | _csp_layer(f"{p}.C3_n3", 2 * c0, c1, n, dw) | _conv(f"{p}.bu_conv1", c1, c1, 3, dw)
            | _csp_layer(f"{p}.C3_n4", 2 * c1, c2, n, dw))


def _yolox_head(p: str, num_classes: int, width: float, dw: bool) -> Shapes:
    hidden = int(256 * width)
    shapes: Shapes = {}
    for i, cin in enumerate(int(c * width) for c in (256, 512, 1024)):
        shapes |= _base_conv(f"{p}.stems.{i}", cin, hidden, 1)
        for branch in ("cls_convs", "reg_convs"):
            shapes |= _conv(f"{p}.{branch}.{i}.0", hidden, hidden, 3, dw) | _conv(f"{p}.{branch}.{i}.1", hidden,
                                                                                 hidden, 3, dw)
        for name, out in (("cls_preds", num_classes), ("reg_preds", 4), ("obj_preds", 1)):
            shapes |= {f"{p}.{name}.{i}.weight": (out, hidden, 1, 1), f"{p}.{name}.{i}.bias": (out,)}
    return shapes


# exp name -> (depth, width, depthwise), as in the official exps/default/yolox_*.py
YOLOX_EXPS = {"nano": (0.33, 0.25, True), "tiny": (0.33, 0.375, False), "s": (0.33, 0.50, False),
              "m": (0.67, 0.75, False), "l": (1.0, 1.0, False), "x": (1.33, 1.25, False)}


def _random_state(shapes: Shapes) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)

    def tensor(key: str, shape: tuple[int, ...]) -> torch.Tensor:
        if key.endswith("num_batches_tracked"):
            return torch.randint(0, 100, shape, generator=generator)
        if key.endswith("running_var"):
            return torch.rand(shape, generator=generator) + 0.5
        return torch.randn(shape, generator=generator) * 0.1

    return {k: tensor(k, s) for k, s in shapes.items()}


def official_yolox(size: str, num_classes: int = 80) -> dict[str, torch.Tensor]:
    depth, width, dw = YOLOX_EXPS[size]
    return _random_state(_pafpn("backbone", depth, width, dw) | _yolox_head("head", num_classes, width, dw))


def yolox_recipe_model(size: str, num_classes: int) -> torch.nn.Module:
    depth, _, dw = YOLOX_EXPS[size]
    architecture = {"backbone": {"name": f"cspdarknet_{size}"}, "neck": {"name": "pafpn", "depth": depth,
                    "depthwise": dw}, "head": {"name": "anchor_free_decoupled", "depthwise": dw}}
    return build_model(task="detection", architecture=architecture, criteria=["yolox_loss"], num_classes=num_classes)


def _ours(key: str) -> str:
    """Where the official YOLOX documentation puts each part: YOLOPAFPN.backbone is the darknet."""
    if key.startswith("backbone.backbone."):
        return "backbone." + key.removeprefix("backbone.backbone.")
    return ("neck." + key.removeprefix("backbone.")) if key.startswith("backbone.") else key


@pytest.mark.parametrize("size", ["nano", "tiny", "s"])
def test_official_yolox_checkpoint_lands_tensor_by_tensor(size, tmp_path):
    official = official_yolox(size)
    torch.save({"model": official}, tmp_path / f"yolox_{size}.pth")
    model = yolox_recipe_model(size, num_classes=80)
    report = load_weights(model, tmp_path / f"yolox_{size}.pth", strict=True)
    assert "official YOLOX" in report.format and not report.reinitialised and not report.left_out
    own = model.state_dict()
    assert len(own) == len(official)
    for key, value in official.items():
        if key != "backbone.backbone.stem.conv.conv.weight":  # its input channels go BGR -> RGB
            assert torch.equal(own[_ours(key)], value), key
    # the official network reads BGR 0..255 images; ours, with the official weights, the same image as RGB
    as_official = yolox_recipe_model(size, num_classes=80)
    as_official.load_state_dict({_ours(k): v for k, v in official.items()})
    bgr = torch.rand(1, 3, 64, 64) * 255
    expected = as_official.eval()(bgr)
    torch.testing.assert_close(model.eval()(bgr.flip(1)), expected)


@pytest.mark.parametrize("size", list(YOLOX_EXPS))
def test_official_yolox_names_and_shapes_equal_ours_for_every_size(size):
    depth, width, dw = YOLOX_EXPS[size]
    official = _pafpn("backbone", depth, width, dw) | _yolox_head("head", 80, width, dw)
    with torch.device("meta"):
        ours = {k: tuple(v.shape) for k, v in yolox_recipe_model(size, num_classes=80).state_dict().items()}
    assert ours == {_ours(k): shape for k, shape in official.items()}


def test_official_yolox_for_another_class_count_reinitialises_only_class_predictions(tmp_path):
    torch.save({"model": official_yolox("nano", num_classes=80)}, tmp_path / "yolox_nano.pth")
    model = yolox_recipe_model("nano", num_classes=3)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_weights(model, tmp_path / "yolox_nano.pth", strict=False)
    expected = {f"head.cls_preds.{i}.{p}" for i in range(3) for p in ("weight", "bias")}
    assert set(report.reinitialised) == expected and not report.left_out
    for key in expected:
        assert torch.equal(model.state_dict()[key], initial[key])
    assert "re-initialised 6 (head.cls_preds" in report.summary()
    with pytest.raises(WeightsError, match="do not fit.*of another shape.*cls_preds"):
        load_weights(yolox_recipe_model("nano", num_classes=3), tmp_path / "yolox_nano.pth", strict=True)


def test_official_yolox_of_another_size_or_model_is_a_clear_error(tmp_path):
    torch.save({"model": official_yolox("s")}, tmp_path / "yolox_s.pth")
    another_size = r"model of another size: \d+ tensors.*dark2.0.conv.weight: file \(64, 32, 3, 3\) vs model \(48, 24"
    with pytest.raises(WeightsError, match=another_size):
        load_weights(yolox_recipe_model("tiny", num_classes=80), tmp_path / "yolox_s.pth", strict=False)
    torch.save({"model": {"encoder.layers.0.weight": torch.zeros(4, 4)}}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="no tensor fits ComposedModel.*closest expected"):
        load_weights(yolox_recipe_model("nano", num_classes=80), tmp_path / "other.pth", strict=False)


def test_official_yolox_backbone_part_into_cspdarknet_pretrained(tmp_path):
    official = official_yolox("s")
    torch.save({"model": official}, tmp_path / "yolox_s.pth")
    architecture = {"backbone": {"name": "cspdarknet_s", "pretrained": str(tmp_path / "yolox_s.pth")},
                    "neck": {"name": "fpn"}}
    model = build_model(task="detection", architecture=architecture, criteria=["retinanet_loss"], num_classes=3)
    own = model.state_dict()
    for key, value in official.items():
        if key == "backbone.backbone.stem.conv.conv.weight":
            assert torch.equal(own["backbone.stem.conv.conv.weight"], value[:, [2, 1, 0, 5, 4, 3, 8, 7, 6, 11, 10, 9]])
        elif key.startswith("backbone.backbone."):
            assert torch.equal(own[_ours(key)], value), key


# --- PIDNet: official module tree -> {name: shape} ------------------------------------------------------------


def _pid_bn(p: str, c: int) -> Shapes:
    return _bn(p, c)


def _pid_conv_bn(p: str, cin: int, cout: int, k: int) -> Shapes:  # nn.Sequential(Conv2d(bias=False), BN)
    return {f"{p}.0.weight": (cout, cin, k, k), **_pid_bn(f"{p}.1", cout)}


def _basic_block(p: str, cin: int, planes: int, downsample: bool) -> Shapes:
    shapes = {f"{p}.conv1.weight": (planes, cin, 3, 3), **_pid_bn(f"{p}.bn1", planes),
              f"{p}.conv2.weight": (planes, planes, 3, 3), **_pid_bn(f"{p}.bn2", planes)}
    return shapes | (_pid_conv_bn(f"{p}.downsample", cin, planes, 1) if downsample else {})


def _bottleneck(p: str, cin: int, planes: int, downsample: bool) -> Shapes:
    shapes = {f"{p}.conv1.weight": (planes, cin, 1, 1), **_pid_bn(f"{p}.bn1", planes),
              f"{p}.conv2.weight": (planes, planes, 3, 3), **_pid_bn(f"{p}.bn2", planes),
              f"{p}.conv3.weight": (2 * planes, planes, 1, 1), **_pid_bn(f"{p}.bn3", 2 * planes)}
    return shapes | (_pid_conv_bn(f"{p}.downsample", cin, 2 * planes, 1) if downsample else {})


def _make_layer(p: str, block: str, cin: int, planes: int, blocks: int, stride: int = 1) -> Shapes:
    expansion = 1 if block == "basic" else 2
    make = _basic_block if block == "basic" else _bottleneck
    shapes = make(f"{p}.0", cin, planes, stride != 1 or cin != planes * expansion)
    for i in range(1, blocks):
        shapes |= make(f"{p}.{i}", planes * expansion, planes, False)
    return shapes


def _bn_relu_conv(p: str, cin: int, cout: int, k: int, first: int = 0, groups: int = 1) -> Shapes:
    return {**_pid_bn(f"{p}.{first}", cin), f"{p}.{first + 2}.weight": (cout, cin // groups, k, k)}


def _segment_head(p: str, cin: int, mid: int, cout: int) -> Shapes:
    return {**_pid_bn(f"{p}.bn1", cin), f"{p}.conv1.weight": (mid, cin, 3, 3), **_pid_bn(f"{p}.bn2", mid),
            f"{p}.conv2.weight": (cout, mid, 1, 1), f"{p}.conv2.bias": (cout,)}


def _ppm(p: str, cin: int, mid: int, cout: int, parallel: bool) -> Shapes:
    shapes = _bn_relu_conv(f"{p}.scale0", cin, mid, 1)
    for i in range(1, 5):
        shapes |= _bn_relu_conv(f"{p}.scale{i}", cin, mid, 1, first=1)  # AvgPool first
    if parallel:
        shapes |= _bn_relu_conv(f"{p}.scale_process", 4 * mid, 4 * mid, 3, groups=4)
    else:
        for i in range(1, 5):
            shapes |= _bn_relu_conv(f"{p}.process{i}", mid, mid, 3)
    return shapes | _bn_relu_conv(f"{p}.compression", 5 * mid, cout, 1) | _bn_relu_conv(f"{p}.shortcut", cin, cout, 1)


def official_pidnet(m: int, n: int, planes: int, ppm: int, head: int, num_classes: int) -> Shapes:
    """models/pidnet.py PIDNet(m, n, num_classes, planes, ppm_planes, head_planes, augment=True)."""
    p = planes
    s: Shapes = {"conv1.0.weight": (p, 3, 3, 3), "conv1.0.bias": (p,), **_pid_bn("conv1.1", p),
                 "conv1.3.weight": (p, p, 3, 3), "conv1.3.bias": (p,), **_pid_bn("conv1.4", p)}
    s |= _make_layer("layer1", "basic", p, p, m) | _make_layer("layer2", "basic", p, 2 * p, m, 2)
    s |= _make_layer("layer3", "basic", 2 * p, 4 * p, n, 2) | _make_layer("layer4", "basic", 4 * p, 8 * p, n, 2)
    s |= _make_layer("layer5", "bottleneck", 8 * p, 8 * p, 2, 2)
    s |= _pid_conv_bn("compression3", 4 * p, 2 * p, 1) | _pid_conv_bn("compression4", 8 * p, 2 * p, 1)
    for name in ("pag3", "pag4"):
        s |= _pid_conv_bn(f"{name}.f_x", 2 * p, p, 1) | _pid_conv_bn(f"{name}.f_y", 2 * p, p, 1)
    s |= _make_layer("layer3_", "basic", 2 * p, 2 * p, m) | _make_layer("layer4_", "basic", 2 * p, 2 * p, m)
    s |= _make_layer("layer5_", "bottleneck", 2 * p, 2 * p, 1)
    if m == 2:
        s |= _basic_block("layer3_d", 2 * p, p, True) | _make_layer("layer4_d", "bottleneck", p, p, 1)
        s |= _pid_conv_bn("diff3", 4 * p, p, 3) | _ppm("spp", 16 * p, ppm, 4 * p, parallel=True)
        s |= _pid_conv_bn("dfm.conv_p", 4 * p, 4 * p, 1) | _pid_conv_bn("dfm.conv_i", 4 * p, 4 * p, 1)
    else:
        s |= _basic_block("layer3_d", 2 * p, 2 * p, False) | _basic_block("layer4_d", 2 * p, 2 * p, False)
        s |= _pid_conv_bn("diff3", 4 * p, 2 * p, 3) | _ppm("spp", 16 * p, ppm, 4 * p, parallel=False)
        s |= _bn_relu_conv("dfm.conv", 4 * p, 4 * p, 3)
    s |= _pid_conv_bn("diff4", 8 * p, 2 * p, 3) | _make_layer("layer5_d", "bottleneck", 2 * p, 2 * p, 1)
    s |= _segment_head("seghead_p", 2 * p, head, num_classes) | _segment_head("seghead_d", 2 * p, p, 1)
    return s | _segment_head("final_layer", 4 * p, head, num_classes)


# size -> official get_seg_model arguments (m, n, planes, ppm_planes, head_planes)
PIDNET_SIZES = {"s": (2, 3, 32, 96, 128), "m": (2, 3, 64, 96, 128), "l": (3, 4, 64, 112, 256)}


@pytest.mark.parametrize("size", ["m", "l"])
def test_official_pidnet_names_and_shapes_equal_ours(size):
    with torch.device("meta"):
        ours = {k: tuple(v.shape) for k, v in PIDNet(num_classes=19, size=size).state_dict().items()}
    assert ours == official_pidnet(*PIDNET_SIZES[size], num_classes=19)


def test_official_pidnet_cityscapes_checkpoint_lands_tensor_by_tensor(tmp_path):
    size = "s"
    """tools/train.py saves FullModel(model, sem_loss, bd_loss).state_dict(): 'model.' keys plus the
    OHEM cross-entropy's class weights."""
    official = _random_state(official_pidnet(*PIDNET_SIZES[size], num_classes=19))
    file = {**{f"model.{k}": v for k, v in official.items()}, "sem_loss.criterion.weight": torch.ones(19)}
    torch.save(file, tmp_path / f"PIDNet_{size.upper()}_Cityscapes_val.pt")
    model = PIDNet(num_classes=19, size=size)
    report = load_weights(model, tmp_path / f"PIDNet_{size.upper()}_Cityscapes_val.pt", strict=False)
    assert "official PIDNet" in report.format and report.left_out == ("sem_loss.criterion.weight",)
    own = model.state_dict()
    assert not report.reinitialised and len(own) == len(official)
    for key, value in official.items():
        assert torch.equal(own[key], value), key
    other = PIDNet(num_classes=4, size=size, pretrained=str(tmp_path / f"PIDNet_{size.upper()}_Cityscapes_val.pt"))
    assert not torch.equal(other.state_dict()["final_layer.conv2.bias"][:4], official["final_layer.conv2.bias"][:4])
    assert torch.equal(other.state_dict()["layer5_d.0.conv3.weight"], official["layer5_d.0.conv3.weight"])


def test_official_pidnet_imagenet_checkpoint_loads_what_fits(tmp_path):
    """get_seg_model with imgnet_pretrained: `torch.load(...)['state_dict']`, tensors that match by name and
    shape; the ImageNet classifier (here a 1000-way final layer) does not fit and is left as initialised."""
    official = _random_state(official_pidnet(*PIDNET_SIZES["s"], num_classes=1000))
    imagenet = {k: v for k, v in official.items() if not k.startswith(("seghead_p.", "seghead_d."))}
    torch.save({"state_dict": imagenet}, tmp_path / "PIDNet_S_ImageNet.pth.tar")
    model = PIDNet(num_classes=19, size="s", pretrained=str(tmp_path / "PIDNet_S_ImageNet.pth.tar"))
    own = model.state_dict()
    for key, value in imagenet.items():
        if not key.startswith("final_layer.conv2"):
            assert torch.equal(own[key], value), key
    report = load_weights(PIDNet(num_classes=19, size="s"), tmp_path / "PIDNet_S_ImageNet.pth.tar", strict=False)
    assert {"final_layer.conv2.weight", "final_layer.conv2.bias"} <= set(report.reinitialised)
    assert all(k.startswith(("seghead_", "final_layer.conv2")) for k in report.reinitialised)


@pytest.mark.slow
def test_train_from_an_official_yolox_checkpoint_says_what_it_loaded(cli, tmp_path):
    """`model.checkpoint: yolox_nano.pth` (80 COCO classes) on the 4-class shapes recipe: one short epoch."""
    torch.save({"model": official_yolox("nano", num_classes=80)}, tmp_path / "yolox_nano.pth")
    recipe = Path(__file__).parents[2] / "recipes" / "detection" / "yolox_nano_shapes.yaml"
    result = cli("train", recipe, f"model.checkpoint={tmp_path / 'yolox_nano.pth'}", "training.epochs=1",
                 "training.batch_size=4", "data.train.num_images=8", "data.val.num_images=4",
                 "environment.num_workers=0", "--output-dir", tmp_path / "runs", "--name", "ft")
    assert result.exit_code == 0, result.output
    assert "official YOLOX checkpoint" in result.output
    assert "re-initialised 6 (head.cls_preds.0.weight" in result.output and "left out 0" in result.output
