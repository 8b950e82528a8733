"""Small building blocks shared by the backbones."""
from __future__ import annotations

import torch
from torch import nn


def conv_bn_act(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1,
                act: type[nn.Module] | None = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act(inplace=True) if act in (nn.ReLU, nn.LeakyReLU) else act())
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """ResNet basic block: dense 3x3 convs, which are what CPUs run fastest per FLOP."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv_bn_act(cin, cout, 3, stride)
        self.conv2 = conv_bn_act(cout, cout, 3, 1, act=None)
        self.shortcut = (nn.Identity() if stride == 1 and cin == cout
                         else conv_bn_act(cin, cout, 1, stride, act=None))

    @property
    def last_norm(self) -> nn.BatchNorm2d:
        """The BatchNorm that ends the residual branch: zeroing its scale makes the block an identity."""
        return self.conv2[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class DepthwiseSeparableBlock(nn.Module):
    """Depthwise 3x3 + pointwise 1x1 with BatchNorm and LeakyReLU, residual when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.dw = conv_bn_act(cin, cin, 3, stride, groups=cin, act=nn.LeakyReLU)
        self.pw = conv_bn_act(cin, cout, 1, act=None)
        self.act = nn.LeakyReLU(0.1, inplace=True)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.dw(x))
        return self.act(x + y if self.residual else y)
