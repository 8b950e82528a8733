"""Backbones. Each returns feature maps at strides 8 and 16 and says their channel counts."""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet18

from .layers import BasicBlock, DepthwiseSeparableBlock, conv_bn_act
from .registry import register_backbone


class Backbone(nn.Module):
    channels: tuple[int, int]
    """Channels of the stride-8 and stride-16 maps."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - interface
        raise NotImplementedError


class _Staged(Backbone):
    """stem (stride 4) -> stage to stride 8 -> stage to stride 16."""

    def __init__(self, stem: nn.Module, s8: nn.Module, s16: nn.Module, channels: tuple[int, int]):
        super().__init__()
        self.stem, self.s8, self.s16 = stem, s8, s16
        self.channels = channels

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f8 = self.s8(self.stem(x))
        return f8, self.s16(f8)


def _fixed_depth(name: str, depth: int) -> None:
    if depth != 1:
        raise ValueError(f"{name} has a fixed depth; depth={depth} is only for facelm_res")


@register_backbone("facelm_res")
def facelm_res(in_chans: int = 3, width: int = 32, depth: int = 1) -> Backbone:
    """The default: a narrow ResNet of basic blocks, sized for speed on one CPU thread (its times:
    docs/results.md#speed). ``depth`` is the number of stride-1 blocks after each stride-8 and -16 downsampling."""
    w = width
    stem = nn.Sequential(conv_bn_act(in_chans, w * 3 // 4, 3, 2), BasicBlock(w * 3 // 4, w, 2))
    s8 = nn.Sequential(BasicBlock(w, 2 * w, 2), *(BasicBlock(2 * w, 2 * w) for _ in range(depth)))
    s16 = nn.Sequential(BasicBlock(2 * w, 4 * w, 2), *(BasicBlock(4 * w, 4 * w) for _ in range(depth)))
    return _Staged(stem, s8, s16, (2 * w, 4 * w))


@register_backbone("simple_cnn")
def simple_cnn(in_chans: int = 3, width: int = 32, depth: int = 1) -> Backbone:
    """A small plain CNN: conv-BN-ReLU stacks with stride-2 convs, no shortcuts."""
    _fixed_depth("simple_cnn", depth)
    w = width
    stem = nn.Sequential(conv_bn_act(in_chans, w // 2, 3, 2), conv_bn_act(w // 2, w, 3, 2))
    s8 = nn.Sequential(conv_bn_act(w, 2 * w, 3, 2), conv_bn_act(2 * w, 2 * w))
    s16 = nn.Sequential(conv_bn_act(2 * w, 4 * w, 3, 2), conv_bn_act(4 * w, 4 * w))
    return _Staged(stem, s8, s16, (2 * w, 4 * w))


@register_backbone("dwsep_resnet")
def dwsep_resnet(in_chans: int = 3, width: int = 32, depth: int = 1) -> Backbone:
    """Depthwise-separable residual CNN with BatchNorm and LeakyReLU."""
    _fixed_depth("dwsep_resnet", depth)
    w = width
    stem = nn.Sequential(conv_bn_act(in_chans, w, 3, 2, act=nn.LeakyReLU), DepthwiseSeparableBlock(w, w, 2),
                         DepthwiseSeparableBlock(w, w))
    s8 = nn.Sequential(DepthwiseSeparableBlock(w, 2 * w, 2), DepthwiseSeparableBlock(2 * w, 2 * w),
                       DepthwiseSeparableBlock(2 * w, 2 * w))
    s16 = nn.Sequential(DepthwiseSeparableBlock(2 * w, 4 * w, 2), DepthwiseSeparableBlock(4 * w, 4 * w),
                        DepthwiseSeparableBlock(4 * w, 4 * w))
    return _Staged(stem, s8, s16, (2 * w, 4 * w))


@register_backbone("resnet18")
def resnet18_backbone(in_chans: int = 3, width: int = 64, depth: int = 1) -> Backbone:
    """torchvision's ResNet-18 (random init: no weights are downloaded), optionally 1-channel input."""
    _fixed_depth("resnet18", depth)
    if width != 64:
        raise ValueError("resnet18 has a fixed width of 64")
    net = resnet18(weights=None)
    if in_chans != 3:
        net.conv1 = nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1)
    return _Staged(stem, net.layer2, net.layer3, (128, 256))
