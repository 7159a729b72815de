"""The recipe schema: typed dataclasses with defaults (OmegaConf structured configs).

A user writes only what differs from these defaults. Named components (datasets, transforms,
backbones, necks, heads, losses, optimizers, schedulers) are mappings with a `name` (or
`criterion`) plus options; the options are checked against the component's constructor
signature by `trainer.recipe.validate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

TASKS = ("classification", "detection", "segmentation")
AMP_MODES = ("none", "auto", "bf16", "fp16")


@dataclass
class DataConfig:
    format: str = "shapes"  # a registered dataset: shapes | image_folder | coco | yolo | mask_folder ...
    train: Dict[str, Any] = field(default_factory=dict)  # options of the train split's dataset
    val: Dict[str, Any] = field(default_factory=dict)  # options of the val split's dataset


@dataclass
class MixConfig:
    """Classification batch mixing (torchvision MixUp / CutMix); both 0 means off."""

    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    prob: float = 1.0


@dataclass
class MosaicConfig:
    """YOLOX-style mosaic and mixup for detection; both probabilities 0 means off."""

    prob: float = 0.0
    mixup_prob: float = 0.0
    scale: List[float] = field(default_factory=lambda: [0.5, 1.5])
    off_last_epochs: int = 0  # switch mosaic and mixup off for the last N epochs


@dataclass
class AugmentationConfig:
    train: List[Dict[str, Any]] = field(default_factory=list)  # [{name: hflip, p: 0.5}, ...]
    val: List[Dict[str, Any]] = field(default_factory=list)
    mix: MixConfig = field(default_factory=MixConfig)
    mosaic: MosaicConfig = field(default_factory=MosaicConfig)


@dataclass
class ArchitectureConfig:
    backbone: Optional[Dict[str, Any]] = None  # {name: resnet18, pretrained: ~, ...}
    neck: Optional[Dict[str, Any]] = None  # {name: fpn, ...}
    head: Optional[Dict[str, Any]] = None  # {name: fc, ...}; follows from the losses when omitted
    full: Optional[Dict[str, Any]] = None  # a whole network instead of backbone/neck/head: {name: pidnet}


@dataclass
class PostprocessConfig:
    """Detection decoding: score threshold, class-aware NMS, detections kept per image."""

    score_threshold: float = 0.01
    nms_iou: float = 0.65
    max_detections: int = 100
    pre_nms_top_k: int = 1000


@dataclass
class ModelConfig:
    architecture: ArchitectureConfig = field(default_factory=ArchitectureConfig)
    losses: List[Dict[str, Any]] = field(default_factory=list)  # [{criterion: cross_entropy, weight: ~}]
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    checkpoint: Optional[str] = None  # whole-model weights to start from (a trainer checkpoint or state dict)


@dataclass
class EmaConfig:
    enabled: bool = False
    decay: float = 0.9998
    warmup_steps: int = 2000  # decay ramps up as decay * (1 - exp(-step / warmup_steps)); 0 = constant


@dataclass
class EarlyStoppingConfig:
    patience: int = 0  # validations without improvement of training.best_metric before stopping; 0 = off
    min_delta: float = 0.0


@dataclass
class TrainingConfig:
    epochs: int = 10
    batch_size: int = 32
    optimizer: Dict[str, Any] = field(default_factory=lambda: {"name": "sgd"})
    scheduler: Dict[str, Any] = field(default_factory=lambda: {"name": "cosine"})
    no_decay_norm_bias: bool = True  # no weight decay on normalisation weights and biases
    amp: str = "auto"  # none | auto (bf16 on CUDA where supported, else fp16; off on CPU) | bf16 | fp16
    grad_clip: Optional[float] = None  # max global gradient norm
    grad_accum_steps: int = 1
    ema: EmaConfig = field(default_factory=EmaConfig)
    val_every: int = 1  # validate every N epochs (and always after the last)
    best_metric: Optional[str] = None  # metric that picks best.pt; default top1 / mAP50_95 / mIoU
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    max_steps_per_epoch: Optional[int] = None  # cut epochs short (smoke tests, debugging)
    channels_last: bool = False
    compile: bool = False  # torch.compile the model
    sync_batchnorm: bool = False  # convert BatchNorm to SyncBatchNorm under DDP


@dataclass
class LoggingConfig:
    output_dir: str = "runs"
    name: Optional[str] = None  # run directory name; default <recipe file stem>
    log_every: int = 20  # steps between reading the loss on the host (progress, non-finite check)
    progress: str = "auto"  # auto (rich bar on a terminal, log lines otherwise) | bar | lines | none
    tensorboard: bool = False
    plots: bool = True  # PNG curves and confusion matrix / PR curve at the end of training
    val_images_every: int = 0  # save validation images with predictions every N epochs; 0 = off


@dataclass
class EnvironmentConfig:
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    num_workers: int = 2
    seed: int = 0
    deterministic: bool = False
    cudnn_benchmark: bool = True
    pin_memory: bool = True


@dataclass
class Recipe:
    task: str = "classification"
    imports: List[str] = field(default_factory=list)  # modules that register custom components
    data: DataConfig = field(default_factory=DataConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    environment: EnvironmentConfig = field(default_factory=EnvironmentConfig)
