"""Is trainer's YOLOX-nano the same model and loss as NetsPresso Trainer 1.4.1's? (rules suspects out)

    python scripts/peer_equivalence.py [--cache DIR]

1. Model: NetsPresso's yolox_nano (cspdarknet + yolopafpn + anchor_free_decoupled_head, depthwise)
   is built in its venv; its weights are copied into trainer's cspdarknet_nano + pafpn +
   anchor_free_decoupled (tensors matched by name, `our_key`) and both forward the same
   input in eval mode: the largest output difference is printed.
   With ``--netspresso-weights W --trainer-run RUN``: the same with NetsPresso's trained weights W,
   which are then evaluated by ``trainer eval RUN`` (is our evaluation fair to its model?).
2. Loss: NetsPresso's YOLOXLoss (L1 off) and trainer's yolox_loss on the same random head outputs
   and ground truth (4 images, 1-4 boxes each): totals and the largest gradient difference.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_setup import ensure_venv  # noqa: E402

NETSPRESSO_SIDE = r'''
import copy, sys, torch
from omegaconf import OmegaConf
from netspresso_trainer.losses.detection.yolox import YOLOXLoss
from netspresso_trainer.models import build_model
work = sys.argv[1]
conf = OmegaConf.create({"task": "detection", "name": "yolox_nano", "checkpoint": {"use_pretrained": False,
    "load_head": False, "path": None, "optimizer_path": None}, "freeze_backbone": False, "single_task_model": False,
    "architecture": {"full": None, "backbone": {"name": "cspdarknet", "params": {"depthwise": True, "dep_mul": 0.33,
    "wid_mul": 0.25, "act_type": "silu"}, "stage_params": None}, "neck": {"name": "yolopafpn", "params": {
    "depthwise": True, "dep_mul": 0.33, "act_type": "silu"}}, "head": {"name": "anchor_free_decoupled_head",
    "params": {"depthwise": True, "act_type": "silu"}}}})
torch.manual_seed(0)
model = build_model(conf, 10, devices=torch.device("cpu"), distributed=False).eval()
if len(sys.argv) > 2:  # trained weights (NetsPresso's *.safetensors)
    from safetensors.torch import load_file
    model.load_state_dict(load_file(sys.argv[2]))
case = torch.load(f"{work}/case.pt")
with torch.no_grad():
    out = model(case["x"])["pred"]
levels = [level.clone().requires_grad_() for level in case["levels"]]
loss = YOLOXLoss(l1_activate_epoch=10**6, cur_epoch=None)
loss.use_l1_update = lambda: False
total = loss({"pred": levels}, {"gt": copy.deepcopy(case["gts"]), "img_size": 128, "num_classes": 10})
total.backward()
torch.save({"state": list(model.state_dict().items()), "out": out, "total": total.detach(),
            "grads": [level.grad for level in levels]}, f"{work}/theirs.pt")
'''


def _case(work: Path) -> dict:
    torch.manual_seed(0)
    gts = []
    for _ in range(4):
        n = int(torch.randint(1, 5, ()).item())
        corner = torch.rand(n, 2) * 100
        gts.append({"boxes": torch.cat([corner, corner + torch.rand(n, 2) * 30 + 8], 1).clamp(max=127),
                    "labels": torch.randint(0, 10, (n,))})
    case = {"x": torch.randn(2, 3, 128, 128), "gts": gts,
            "levels": [torch.randn(4, 15, 128 // s, 128 // s) * 0.5 for s in (8, 16, 32)]}
    torch.save(case, work / "case.pt")
    return case


def _ours() -> torch.nn.Module:
    from trainer.components import load_builtin_components
    from trainer.registry import BACKBONES, HEADS, NECKS

    load_builtin_components()
    backbone = BACKBONES.get("cspdarknet_nano")()
    neck = NECKS.get("pafpn")(in_channels=backbone.out_channels, in_strides=backbone.out_strides, depth=0.33,
                              depthwise=True)
    head = HEADS.get("anchor_free_decoupled")(in_channels=neck.out_channels, in_strides=neck.out_strides,
                                              num_classes=10, depthwise=True)
    return torch.nn.ModuleList([backbone, neck, head])


def our_key(key: str) -> str:
    """A NetsPresso yolox_nano state key -> the key of `_ours()` (``head.stems.0.block.conv.weight`` ->
    ``2.stems.0.conv.weight``). Matching by shape in order is not enough: same-shape BatchNorm
    tensors are constants at init, and NetsPresso's head registers its modules in another order."""
    part, rest = key.split(".", 1)
    for theirs, ours in ((".block.conv.", ".conv."), (".block.norm.", ".bn."), ("depthwise.", "dconv."),
                         ("pointwise.", "pconv.")):
        rest = rest.replace(theirs, ours)
    return {"backbone": "0", "neck": "1", "head": "2"}[part] + "." + rest


def compare_models(case: dict, theirs: dict) -> float:
    model = _ours()
    model.load_state_dict({our_key(key): tensor for key, tensor in theirs["state"]})  # strict: every key once
    model.eval()
    with torch.no_grad():
        out = model[2](model[1](model[0](case["x"])), image_size=(128, 128))
    flat = torch.cat([level.flatten(2).transpose(1, 2) for level in theirs["out"]], 1)
    ours = torch.cat([out["box_preds"], out["obj_logits"][..., None], out["cls_logits"]], -1)
    return float((ours - flat).abs().max())


def compare_losses(case: dict, theirs: dict) -> tuple[float, float, float]:
    from trainer.losses.yolox import yolox_loss
    from trainer.models.heads.anchor_free_decoupled import make_grid

    levels = [level.clone().requires_grad_() for level in case["levels"]]
    out = torch.cat([level.flatten(2).transpose(1, 2) for level in levels], 1)
    grids, strides = zip(*[make_grid(lv.shape[-2], lv.shape[-1], s, torch.device("cpu"))
                           for lv, s in zip(levels, (8, 16, 32))])
    most = max(len(g["labels"]) for g in case["gts"])
    gt_boxes, gt_labels = torch.zeros(4, most, 4), torch.full((4, most), -1)
    for b, g in enumerate(case["gts"]):
        gt_boxes[b, : len(g["labels"])], gt_labels[b, : len(g["labels"])] = g["boxes"], g["labels"]
    parts = yolox_loss(box_preds=out[..., :4], obj_logits=out[..., 4], cls_logits=out[..., 5:],
                       grid_xy=torch.cat(grids), strides=torch.cat(strides), gt_boxes=gt_boxes, gt_labels=gt_labels,
                       use_l1=False)
    total = sum(parts.values())
    total.backward()
    grad = max(float((mine.grad - ref).abs().max()) for mine, ref in zip(levels, theirs["grads"]))
    return float(total.detach()), float(theirs["total"]), grad


def evaluate_in_trainer(theirs: dict, run: Path) -> str:
    """NetsPresso's trained weights through `trainer eval RUN` (the run's recipe, data and postprocess)."""
    parts = ("backbone", "neck", "head")
    state = {}
    for key, tensor in theirs["state"]:
        index, rest = our_key(key).split(".", 1)
        state[f"{parts[int(index)]}.{rest}"] = tensor
    weights = run.parent / "netspresso_weights.pt"
    torch.save({"model": state}, weights)
    cli = str(Path(sys.executable).parent / "trainer")
    done = subprocess.run([cli, "eval", str(run), "--checkpoint", str(weights), "--json", str(run.parent / "np.json"),
                           "model.postprocess.score_threshold=0.001"], check=True, capture_output=True, text=True)
    return (run.parent / "np.json").read_text() if done.returncode == 0 else done.stderr


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", default=str(Path.home() / ".cache" / "trainer-peers"))
    parser.add_argument("--netspresso-weights", help="a NetsPresso *.safetensors of the same set (evaluation check)")
    parser.add_argument("--trainer-run", help="with --netspresso-weights: the trainer run whose eval to use")
    args = parser.parse_args()
    python = ensure_venv(Path(args.cache), "netspresso")
    weights = [str(Path(args.netspresso_weights).resolve())] if args.netspresso_weights else []
    with tempfile.TemporaryDirectory() as work:
        case = _case(Path(work))
        subprocess.run([str(python), "-c", NETSPRESSO_SIDE, work, *weights], check=True, capture_output=True)
        theirs = torch.load(Path(work) / "theirs.pt", weights_only=False)
    print(f"model: {len(theirs['state'])} tensors; largest output difference {compare_models(case, theirs):.2e}")
    ours, ref, grad = compare_losses(case, theirs)
    print(f"loss: trainer {ours:.7f}, NetsPresso {ref:.7f}; largest gradient difference {grad:.2e}")
    if weights and args.trainer_run:
        print(f"NetsPresso's weights evaluated by trainer eval: {evaluate_in_trainer(theirs, Path(args.trainer_run))}")


if __name__ == "__main__":
    main()
