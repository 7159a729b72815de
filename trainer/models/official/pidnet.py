"""Official PIDNet checkpoints (XuJiacong/PIDNet).

ImageNet files (``PIDNet_S_ImageNet.pth.tar``) hold ``{"state_dict": ...}`` with the network's own
names, which are ours (`pidnet` follows the official module tree); the ImageNet classifier's extra
tensors are left out. Cityscapes / CamVid files are the state dict of the training wrapper
``FullModel(model, sem_loss, bd_loss)``: ``model.*`` is the network, ``sem_loss.*`` / ``bd_loss.*``
are loss buffers (class weights) with no counterpart here.
"""

from __future__ import annotations


def pidnet_key(key: str) -> str | None:
    """An official PIDNet training-wrapper key -> our `pidnet` key (loss buffers: None)."""
    return key[len("model.") :] if key.startswith("model.") else None
