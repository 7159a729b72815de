"""One help text per recipe field, keyed by its dotted path; docs/recipes.md is generated from it
(`trainer docs`). A test checks that every field of `trainer.recipe.schema.Recipe` has an entry
and that no entry names a field that does not exist."""

from __future__ import annotations

FIELD_HELP: dict[str, str] = {
    # top level
    "task": "What the model learns: `classification` (one class per image), `detection` (boxes) or "
            "`segmentation` (a class per pixel).",
    "imports": "Python modules imported before the recipe is checked; they register custom components "
               "(losses, backbones, datasets, ...) with the registries' decorators. Searched in the installed "
               "packages, then the folder of the recipe file that names them, then the working folder.",
    "data": "Where the images and labels come from.",
    "augmentation": "The transforms applied to training and validation samples.",
    "model": "The network, the losses that train it, and how its outputs become predictions.",
    "training": "Epochs, batches, optimisation and what is kept.",
    "logging": "Where the run is written and what it shows.",
    "environment": "Device, data loading workers and seeding.",
    # data
    "data.format": "A registered dataset (see Datasets below): `shapes` (built-in synthetic, no files), "
                   "`image_folder`, `coco`, `yolo`, `mask_folder`, or one from `imports`.",
    "data.train": "Options of the training split's dataset (its constructor's keyword arguments, e.g. "
                  "`{root: data/pets}`); `task` and `split` are filled in.",
    "data.val": "Options of the validation split's dataset, as `data.train`.",
    # augmentation
    "augmentation.train": "Training transforms in order, each `{name: <transform>, <option>: value}` "
                          "(torchvision.transforms.v2; boxes and masks move with the image). A trailing "
                          "`{name: normalize}` is applied on the device.",
    "augmentation.val": "Validation (and `trainer predict` / `trainer export`) transforms, as "
                        "`augmentation.train`; must end with the same `normalize`.",
    "augmentation.mix": "Classification batch mixing (torchvision MixUp / CutMix), applied on the device.",
    "augmentation.mix.mixup_alpha": "Beta(alpha, alpha) parameter of MixUp; 0 = off.",
    "augmentation.mix.cutmix_alpha": "Beta(alpha, alpha) parameter of CutMix; 0 = off. With both on, each "
                                     "batch uses one of them at random.",
    "augmentation.mix.prob": "Probability that a batch is mixed at all.",
    "augmentation.mosaic": "YOLOX-style mosaic (4 images in one) and mixup for detection.",
    "augmentation.mosaic.prob": "Probability of a mosaic sample; 0 = off.",
    "augmentation.mosaic.mixup_prob": "Probability of blending a second (mosaic) sample into it; 0 = off.",
    "augmentation.mosaic.scale": "Random scale range [low, high] of the mosaic canvas.",
    "augmentation.mosaic.off_last_epochs": "Switch mosaic and mixup off for the last N epochs (YOLOX: 15).",
    # model
    "model.architecture": "The network: `backbone` (+ optional `neck`) + `head`, or one `full` model.",
    "model.architecture.backbone": "`{name: <backbone>, <options>}`; its feature maps feed the neck or head. "
                                   "`pretrained`: `imagenet` (torchvision backbones: torchvision's DEFAULT "
                                   "weights; timm: `true`) or a weights file.",
    "model.architecture.neck": "`{name: <neck>, <options>}` between backbone and head (e.g. `fpn`, `pafpn`); "
                               "`~` = none.",
    "model.architecture.head": "`{name: <head>, <options>}`; by default the head the losses need (e.g. "
                               "`yolox_loss` -> `anchor_free_decoupled`). Name it to set its options.",
    "model.architecture.full": "A whole network instead of backbone/neck/head, e.g. `{name: pidnet, size: s}`.",
    "model.losses": "The losses, each `{criterion: <loss>, <loss options>, weight, name, exclude, inputs}`; "
                    "the total is the weighted sum. `weight`: a number or `{part: number}` (~ = 1.0); "
                    "`name`: label in the logs (default the criterion); `exclude`: parts logged but not "
                    "optimised; `inputs`: `{loss input: model output or batch field}` remapping.",
    "model.postprocess": "Detection decoding of the raw head outputs into boxes (evaluation, predict).",
    "model.postprocess.score_threshold": "Least score of a kept detection (COCO evaluation wants a low one).",
    "model.postprocess.nms_iou": "IoU above which class-aware NMS drops the lower-scoring box.",
    "model.postprocess.max_detections": "Detections kept per image after NMS (COCO uses 100).",
    "model.postprocess.pre_nms_top_k": "Candidates (anchor x class pairs) kept per image before NMS.",
    "model.checkpoint": "Whole-model weights: a trainer checkpoint (its EMA weights when it has them), a state "
                        "dict file, or an official YOLOX / PIDNet checkpoint; `trainer train` starts from them "
                        "(fine-tuning: what fits loads, class predictions for another class count start afresh, "
                        "and the run says so) and `trainer eval RECIPE` evaluates them when no `--checkpoint` "
                        "is given.",
    # training
    "training.epochs": "Passes over the training data.",
    "training.batch_size": "Images per batch per process (under DDP the global batch is this x processes).",
    "training.optimizer": "`{name: <optimizer>, <options>}`, e.g. `{name: sgd, lr: 0.01, momentum: 0.9}`; "
    "`auto` picks AdamW or SGD and the lr from the task, model, batch size and steps, and prints it.",
    "training.scheduler": "`{name: <scheduler>, <options>}`; stepped every optimizer step, warmup included.",
    "training.no_decay_norm_bias": "No weight decay on normalisation weights and biases.",
    "training.amp": "Mixed precision: `none`, `auto` (bf16 on CUDA where supported, else fp16; off on the CPU), "
                    "`bf16` or `fp16` (with a gradient scaler).",
    "training.grad_clip": "Max global gradient norm (clip_grad_norm_); `~` = no clipping.",
    "training.grad_accum_steps": "Micro-batches accumulated per optimizer step.",
    "training.ema": "Exponential moving average of the weights; used for validation and kept in checkpoints "
                    "(evaluate, predict and export prefer it).",
    "training.ema.enabled": "Keep an EMA of the weights.",
    "training.ema.decay": "EMA decay, in (0, 1).",
    "training.ema.warmup_steps": "The decay ramps up as decay x (1 - exp(-step / warmup_steps)); 0 = constant.",
    "training.val_every": "Validate every N epochs (and always after the last).",
    "training.best_metric": "Metric that picks `best.pt` (higher is better); default `top1` / `mAP50_95` / `mIoU`.",
    "training.early_stopping": "Stop when `best_metric` stops improving.",
    "training.early_stopping.patience": "Validations without improvement before stopping; 0 = off.",
    "training.early_stopping.min_delta": "Least increase that counts as an improvement.",
    "training.max_steps_per_epoch": "Cut epochs short after N steps (smoke tests, debugging); `~` = whole epochs.",
    "training.channels_last": "Channels-last memory format (faster convolutions on recent GPUs).",
    "training.compile": "torch.compile the model.",
    "training.sync_batchnorm": "Convert BatchNorm to SyncBatchNorm under DDP.",
    # logging
    "logging.output_dir": "Parent folder of run directories (`--output-dir` overrides).",
    "logging.name": "Run directory name; default the first recipe file's stem. An existing one is never "
                    "overwritten: `name-2`, `name-3`, ... are used.",
    "logging.log_every": "Steps between reading the loss on the host: progress, non-finite check, TensorBoard.",
    "logging.progress": "`auto` (a progress bar on a terminal, log lines otherwise), `bar`, `lines` or `none`.",
    "logging.tensorboard": "Write TensorBoard scalars (loss parts, lr, metrics) and validation images to "
                           "`RUN/tensorboard/`.",
    "logging.plots": "At the end of training write `RUN/plots/curves.png` and `confusion_matrix.png` "
                     "(classification, segmentation) or `pr_curve.png` (detection).",
    "logging.val_images_every": "Every N epochs save validation images (a fixed random sample) with predictions as "
                                "`RUN/plots/val_epoch_N.png` (and to TensorBoard); 0 = off.",
    "logging.mlflow": "MLflow tracking: the recipe as params, per-epoch metrics, best.pt and the plots as "
                      "artifacts (rank 0).",
    "logging.mlflow.tracking_uri": "Log to MLflow (the `trainer[mlflow]` extra): the store's URI, e.g. "
                                   "`http://host:5000`; unset = off. See docs/outputs.md.",
    "logging.mlflow.experiment": "MLflow experiment name (created when missing).",
    "logging.mlflow.run_name": "MLflow run name; default the run directory's name.",
    # environment
    "environment.device": "`auto` (the GPU when there is one), `cpu`, `cuda`, `cuda:N` or `mps`; "
                          "`--device` overrides.",
    "environment.num_workers": "DataLoader worker processes (0 = load in the main process).",
    "environment.seed": "Seed of everything random: data order, augmentation, initialisation.",
    "environment.deterministic": "Deterministic kernels (reproducible, slower; turns cudnn_benchmark off).",
    "environment.cudnn_benchmark": "cuDNN autotuning for fixed input sizes (fast).",
    "environment.pin_memory": "Pinned host memory for faster copies to the GPU.",
}

# keys a recipe may hold that are not fields of the dataclasses (handled by the loader)
EXTRA_KEYS_HELP: dict[str, str] = {
    "base": "A recipe (or list of recipes) merged first, paths relative to this file; chains are allowed, "
            "cycles are an error. Mappings merge key by key, lists are replaced whole; a component given "
            "another name (`data.format`, a `name`, a loss `criterion`) drops the options inherited for the "
            "old one; `key: ~` removes an inherited value (the default applies again). Later files and "
            "command-line overrides follow the same rules; `trainer show --sources` tells where each value "
            "came from.",
}

# descriptions of built-in components whose code carries no docstring, keyed "<registry kind>/<name>"
COMPONENT_HELP: dict[str, str] = {
    "transform/center_crop": "Crop the centre to `size` (torchvision CenterCrop).",
    "transform/color_jitter": "Random brightness, contrast, saturation and hue (ColorJitter).",
    "transform/hflip": "Horizontal flip with probability `p`.",
    "transform/letterbox": "Resize keeping the aspect ratio to fit `size`, pad right and bottom with `fill` "
                           "(masks with 255).",
    "transform/normalize": "(x / 255 - mean) / std, on the device; must be last. Values above 1 are read as "
                           "0..255 units.",
    "transform/photometric_distort": "SSD-style random photometric distortions (RandomPhotometricDistort).",
    "transform/rand_augment": "RandAugment.",
    "transform/random_crop": "Random crop of `size`, padding with `fill` (masks with 255) if needed.",
    "transform/random_erasing": "Erase a random rectangle of the image (boxes and masks unchanged).",
    "transform/random_iou_crop": "SSD-style random crop keeping boxes with enough IoU (RandomIoUCrop).",
    "transform/random_resized_crop": "Random area/aspect crop resized to `size` (RandomResizedCrop).",
    "transform/random_zoom_out": "Place the image on a larger `fill` canvas (RandomZoomOut).",
    "transform/resize": "Resize: an int sets the shorter side, `[h, w]` the exact size.",
    "transform/sanitize_boxes": "Drop degenerate boxes (and their labels); appended automatically for detection.",
    "transform/trivial_augment": "TrivialAugmentWide.",
    "transform/vflip": "Vertical flip with probability `p`.",
    "neck/fpn": "Feature pyramid network (torchvision FeaturePyramidNetwork); `out_channels` defaults to half "
                "the backbone's finest level (256 on ResNet-50, 64 on ResNet-18); `extra_levels` adds P6/P7 "
                "(RetinaNet).",
    "neck/pafpn": "YOLOX path-aggregation FPN (CSP blocks), `depth` multiplier and depthwise convolutions.",
    "head/anchor_decoupled": "RetinaNet head: classification and box-regression towers over anchors, "
                             "GroupNorm in the towers (`norm: none` for the original RetinaNet); anchor sizes "
                             "follow the input size unless `anchor_scale` or `anchor_sizes` is given.",
    "head/anchor_free_decoupled": "YOLOX decoupled head: box, objectness and class branches per level.",
    "head/seg_head": "Semantic segmentation head over the backbone features; logits at the input size.",
    "model/pidnet": "PIDNet real-time segmentation network (sizes s, m, l); `augment` adds the training-time "
                    "auxiliary outputs.",
    "optimizer/adam": "torch.optim.Adam.",
    "optimizer/adamw": "torch.optim.AdamW.",
    "optimizer/sgd": "torch.optim.SGD.",
    "scheduler/constant": "Constant learning rate after the warmup.",
    "scheduler/cosine": ("Cosine decay to `min_lr_ratio` x lr after a linear warmup; every step, or once per "
                         "epoch with `by_epoch` (as NetsPresso, torchvision and timm recipes do)."),
    "scheduler/multistep": "Multiply the lr by `gamma` at each epoch in `milestones`.",
    "scheduler/poly": "Polynomial decay (1 - t)^power.",
    "scheduler/step": "Multiply the lr by `gamma` every `step_epochs` epochs.",
}
