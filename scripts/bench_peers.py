"""trainer side by side with NetsPresso Trainer 1.4.1 and Ultralytics, at the same settings.

    python scripts/bench_peers.py                                  # everything (long: about an hour)
    python scripts/bench_peers.py --tasks detection --sets digits --epochs 20 --seeds 0 1
    python scripts/bench_peers.py --tools trainer netspresso --epochs 2   # a short smoke run
    python scripts/bench_peers.py --data /path/to/yolo_set        # any set in the peer_data layout

Sets up each peer's virtual environment under ``--cache`` once (package registry only), writes the
data sets there (``peer_data.py``), then trains the tools alternately (A B C A B C ...), one thread
and one loader worker each, and prints per tool: steady img/s (optimizer-step hook), wall time,
launch to first step, and the final metric computed one way (pycocotools on every tool's val
predictions; top-1 for classification), with the ratios trainer / peer. Settings shared by all:
AdamW (lr, weight decay; none on norms and biases), cosine with ``--warmup-epochs`` (default 0), no augmentation,
no EMA (Ultralytics cannot turn its EMA off), YOLOX-nano (trainer, NetsPresso) and yolo11n
(Ultralytics, another and larger model) for detection; ResNet-18 (yolo11n-cls) for classification.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peer_data  # noqa: E402
from peer_runs import Outcome, Settings, run_peer, run_trainer  # noqa: E402
from peer_setup import ensure_venv  # noqa: E402

DEFAULTS = {"detection": {"lr": 3e-3, "weight_decay": 0.05, "epochs": 20, "batch_size": 16},
            "classification": {"lr": 2e-3, "weight_decay": 0.05, "epochs": 10, "batch_size": 32}}


def _settings(args: argparse.Namespace, task: str, set_name: str, seed: int) -> Settings:
    cache, defaults = Path(args.cache) / "data", DEFAULTS[task]
    if task == "classification":
        data = peer_data.write_classification_set(cache, num_train=args.num_train, num_val=args.num_val)
        names, size = peer_data.DIGIT_NAMES, 32
    elif set_name == "path":
        data = Path(args.data)
        coco = json.loads((data / "val_coco.json").read_text())
        names = tuple(c["name"] for c in sorted(coco["categories"], key=lambda c: c["id"]))
        size = int(coco["images"][0]["width"])
    else:
        data = peer_data.write_detection_set(cache, set_name, num_train=args.num_train, num_val=args.num_val)
        names, size = peer_data.class_names_of(set_name), peer_data.image_size_of(set_name)
    return Settings(task=task, data=data, class_names=names, image_size=size,
                    epochs=args.epochs or defaults["epochs"], batch_size=defaults["batch_size"],
                    lr=defaults["lr"], weight_decay=defaults["weight_decay"], warmup_epochs=args.warmup_epochs,
                    seed=seed, by_epoch=args.by_epoch)


def _run(tool: str, s: Settings, out: Path, cache: Path) -> Outcome:
    if tool == "trainer":
        return run_trainer(s, out)
    return run_peer(tool, ensure_venv(cache, tool), s, out)


def _print_table(title: str, outcomes: list[Outcome]) -> None:
    print(f"\n{title}")
    print(f"{'tool':<12} {'img/s':>7} {'wall s':>7} {'1st step s':>10}  metric")
    for o in outcomes:
        metric = "  ".join(f"{k} {v:.3f}" for k, v in o.metric.items())
        reached = o.epochs_to(0.95) if o.top1_per_epoch else None
        to_95 = f"  top1 >= 0.95 at epoch {reached}" if reached else ("  never >= 0.95" if o.top1_per_epoch else "")
        print(f"{o.tool:<12} {o.img_per_s:7.1f} {o.wall_s:7.1f} {o.first_step_s:10.1f}  {metric}{to_95}")
    mine = [o for o in outcomes if o.tool == "trainer"]
    for peer in sorted({o.tool for o in outcomes} - {"trainer"}):
        theirs = [o for o in outcomes if o.tool == peer]
        if not mine or not theirs:
            continue
        speed = sum(o.img_per_s for o in mine) / sum(o.img_per_s for o in theirs)
        key = next(iter(mine[0].metric))
        quality = sum(o.metric[key] for o in mine) / max(sum(o.metric[key] for o in theirs), 1e-9)
        print(f"trainer / {peer}: img/s x{speed:.2f}, {key} x{quality:.2f} (means over seeds)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tools", nargs="+", default=["trainer", "netspresso", "ultralytics"])
    parser.add_argument("--tasks", nargs="+", default=["detection", "classification"])
    parser.add_argument("--sets", nargs="+", default=["shapes", "digits"], help="detection sets (peer_data.py)")
    parser.add_argument("--data", help="a detection set in the peer_data layout (adds the set 'path')")
    parser.add_argument("--epochs", type=int, help="default: 20 detection, 10 classification")
    parser.add_argument("--warmup-epochs", type=int, default=0,
                        help="NetsPresso steps its scheduler per epoch: its 1 warmup epoch is none; 0 is equal on all")
    parser.add_argument("--by-epoch", action="store_true",
                        help="trainer's cosine changes once per epoch, as NetsPresso's and Ultralytics' do (default: "
                             "every step, as the figures in docs/benchmarks.md were measured)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--num-train", type=int, default=800)
    parser.add_argument("--num-val", type=int, default=200)
    parser.add_argument("--cache", default=str(Path.home() / ".cache" / "trainer-peers"))
    parser.add_argument("--json", help="write every outcome here")
    args = parser.parse_args()
    cache = Path(args.cache)
    for tool in set(args.tools) - {"trainer"}:
        ensure_venv(cache, tool)
    everything = []
    for task in args.tasks:
        sets = ["digits_cls"] if task == "classification" else args.sets + (["path"] if args.data else [])
        for set_name in sets:
            outcomes = []
            for seed in args.seeds:
                s = _settings(args, task, set_name, seed)
                for tool in args.tools:  # alternated: A B C, A B C for the next seed
                    out = cache / "runs" / f"{task}_{set_name}_e{s.epochs}_s{seed}" / tool
                    outcomes.append(_run(tool, s, out, cache))
                    print(f"{tool} {task} {set_name} seed {seed}: {outcomes[-1]}", flush=True)
            _print_table(f"{task} on {set_name} ({s.epochs} epochs, batch {s.batch_size}, seeds {args.seeds})",
                         outcomes)
            everything += [{"task": task, "set": set_name, **vars(o)} for o in outcomes]
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=1))


if __name__ == "__main__":
    main()
