"""The recipe schema: typed dataclasses with defaults (OmegaConf structured configs).

A user writes only what differs from these defaults. Named components (datasets, transforms,
backbones, necks, heads, losses, optimizers, schedulers) are mappings with a `name` (or
`criterion`) plus options; the options are checked against the component's constructor
signature by `trainer.recipe.validate`. Value constraints are `Annotated` (trainer/constraints.py);
the help text of every field is in trainer/recipe/field_docs.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Dict, List, Optional

from trainer.constraints import AtLeastOne, Choice, NonNegative, Pattern, Positive, Probability, Range, Seed
from trainer.specs import ComponentSpec, LossSpec

TASKS = ("classification", "detection", "segmentation")
AMP_MODES = ("none", "auto", "bf16", "fp16")
PROGRESS_MODES = ("auto", "bar", "lines", "none")
DEVICE = Pattern(r"auto|cpu|cuda(:\d+)?|mps", "auto, cpu, cuda, cuda:N or mps")
RUN_NAME = Pattern(r"(?!\.\.?$)(?=.*\S)[^/\\]+", "a folder name (not empty, no / or \\, not . or ..)")
MAX_BATCH_SIZE = 65536

Count = Annotated[int, AtLeastOne]
Natural = Annotated[int, NonNegative]
Prob = Annotated[float, Probability]


@dataclass
class DataConfig:
    format: str = "shapes"
    train: Dict[str, Any] = field(default_factory=dict)
    val: Dict[str, Any] = field(default_factory=dict)


@dataclass
class MixConfig:
    """Classification batch mixing (torchvision MixUp / CutMix); both 0 means off."""

    mixup_alpha: Annotated[float, NonNegative] = 0.0
    cutmix_alpha: Annotated[float, NonNegative] = 0.0
    prob: Prob = 1.0


@dataclass
class MosaicConfig:
    """YOLOX-style mosaic and mixup for detection; both probabilities 0 means off."""

    prob: Prob = 0.0
    mixup_prob: Prob = 0.0
    scale: List[Annotated[float, Positive]] = field(default_factory=lambda: [0.5, 1.5])
    off_last_epochs: Natural = 0


@dataclass
class AugmentationConfig:
    train: List[Dict[str, Any]] = field(default_factory=list)
    val: List[Dict[str, Any]] = field(default_factory=list)
    mix: MixConfig = field(default_factory=MixConfig)
    mosaic: MosaicConfig = field(default_factory=MosaicConfig)


@dataclass
class ArchitectureConfig:
    backbone: Optional[Dict[str, Any]] = None
    neck: Optional[Dict[str, Any]] = None
    head: Optional[Dict[str, Any]] = None
    full: Optional[Dict[str, Any]] = None


@dataclass
class PostprocessConfig:
    """Detection decoding: score threshold, class-aware NMS, detections kept per image."""

    score_threshold: Prob = 0.01
    nms_iou: Prob = 0.65
    max_detections: Count = 100
    pre_nms_top_k: Count = 1000


@dataclass
class ModelConfig:
    architecture: ArchitectureConfig = field(default_factory=ArchitectureConfig)
    losses: List[Dict[str, Any]] = field(default_factory=list)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    checkpoint: Optional[str] = None

    def loss_specs(self) -> list[LossSpec]:
        """The validated `losses` entries as typed specs (what the loss builder takes)."""
        return [LossSpec.from_entry(entry) for entry in self.losses]

    def part_specs(self) -> dict[str, ComponentSpec]:
        """The architecture parts that are set (`backbone`, `neck`, `head`, `full`) as typed specs."""
        parts = {"backbone": self.architecture.backbone, "neck": self.architecture.neck,
                 "head": self.architecture.head, "full": self.architecture.full}
        return {part: ComponentSpec.from_entry(entry) for part, entry in parts.items() if entry is not None}


@dataclass
class EmaConfig:
    enabled: bool = False
    decay: Annotated[float, Range(gt=0, lt=1)] = 0.9998
    warmup_steps: Natural = 2000


@dataclass
class EarlyStoppingConfig:
    patience: Natural = 0
    min_delta: Annotated[float, NonNegative] = 0.0


@dataclass
class TrainingConfig:
    epochs: Count = 10
    batch_size: Annotated[int, Range(ge=1, le=MAX_BATCH_SIZE)] = 32
    optimizer: Dict[str, Any] = field(default_factory=lambda: {"name": "auto"})  # auto: picked from task, model, steps
    scheduler: Dict[str, Any] = field(default_factory=lambda: {"name": "cosine"})
    no_decay_norm_bias: bool = True
    amp: Annotated[str, Choice(AMP_MODES)] = "auto"
    grad_clip: Optional[Annotated[float, Positive]] = None
    grad_accum_steps: Count = 1
    ema: EmaConfig = field(default_factory=EmaConfig)
    val_every: Count = 1
    best_metric: Optional[str] = None
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    max_steps_per_epoch: Optional[Count] = None
    channels_last: bool = False
    compile: bool = False
    sync_batchnorm: bool = False

    def optimizer_spec(self) -> ComponentSpec:
        return ComponentSpec.from_entry(self.optimizer)

    def scheduler_spec(self) -> ComponentSpec:
        return ComponentSpec.from_entry(self.scheduler)


@dataclass
class MlflowConfig:
    tracking_uri: Optional[str] = None
    experiment: str = "trainer"
    run_name: Optional[str] = None


@dataclass
class LoggingConfig:
    output_dir: str = "runs"
    name: Optional[Annotated[str, RUN_NAME]] = None
    log_every: Count = 20
    progress: Annotated[str, Choice(PROGRESS_MODES)] = "auto"
    tensorboard: bool = False
    plots: bool = True
    val_images_every: Natural = 0
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)


@dataclass
class EnvironmentConfig:
    device: Annotated[str, DEVICE] = "auto"
    num_workers: Natural = 2
    seed: Annotated[int, Seed] = 0
    deterministic: bool = False
    cudnn_benchmark: bool = True
    pin_memory: bool = True


@dataclass
class Recipe:
    task: Annotated[str, Choice(TASKS)] = "classification"
    imports: List[str] = field(default_factory=list)
    data: DataConfig = field(default_factory=DataConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    environment: EnvironmentConfig = field(default_factory=EnvironmentConfig)
