"""Heads: turn backbone features into landmarks, and say how to train themselves.

Coordinates everywhere here are 0-based pixel coordinates of the model input (pixel centres at
integers). Heads work internally in "continuous" units u = x + 0.5, where pixel 0 spans [0, 1).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import conv_bn_act
from .registry import register_head


class Head(nn.Module):
    def forward(self, f8: torch.Tensor, f16: torch.Tensor) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def decode(self, out: dict[str, torch.Tensor]) -> torch.Tensor:  # pragma: no cover
        """Raw outputs -> (B, K, 2) landmarks in input pixels."""
        raise NotImplementedError

    def predict(self, f8: torch.Tensor, f16: torch.Tensor) -> torch.Tensor:
        """Features -> (B, K, 2) landmarks in input pixels: ``decode(forward(...))``, which a head may
        compute more cheaply when only the points are wanted."""
        return self.decode(self(f8, f16))

    def loss(self, out: dict[str, torch.Tensor], target: torch.Tensor) -> dict[str, torch.Tensor]:  # pragma: no cover
        """Loss terms; ``total`` is what is minimised. ``target`` is (B, K, 2) input pixels."""
        raise NotImplementedError


@register_head("pipnet")
class PIPHead(Head):
    """Pixel-in-pixel head (PIPNet, Jin et al. 2021) at stride 8: a score per grid cell and landmark,
    a sub-cell offset, and offsets of each landmark's nearest neighbours in the mean shape, which vote
    for those neighbours and make the result robust to a single confused score map."""

    stride = 8
    offset_radius = 1
    """offsets are trained at the cells within this many steps (x and y) of the true cell"""

    def __init__(self, channels: tuple[int, int], num_points: int, input_size: int,
                 neighbors: list[list[int]] | None = None, sigma: float = 0.75):
        super().__init__()
        c8, c16 = channels
        self.num_points = num_points
        self.grid = input_size // self.stride
        if self.grid * self.stride != input_size:
            raise ValueError(f"input_size {input_size} must be a multiple of {self.stride}")
        self.sigma = sigma
        self.lateral = conv_bn_act(c16, c8, 1, act=None)
        self.fuse = conv_bn_act(c8, c8, 3)
        self.score = nn.Conv2d(c8, num_points, 1)
        self.offset = nn.Conv2d(c8, 2 * num_points, 1)
        nb = neighbors or []
        self.num_neighbors = len(nb[0]) if nb else 0
        if nb and (len(nb) != num_points or any(len(n) != self.num_neighbors for n in nb)):
            raise ValueError("neighbors must list the same number of neighbours for every point")
        self.register_buffer("neighbors", torch.tensor(nb, dtype=torch.long).reshape(num_points, -1),
                             persistent=False)
        self.nb_offset = nn.Conv2d(c8, 2 * num_points * self.num_neighbors, 1) if self.num_neighbors else None
        # Votes are summed by a fixed one-hot matrix (vote j goes to point neighbors.flat[j]) rather than
        # index_add_: the same sums, but index_add_ exports to ONNX as a scatter fixed to the batch size
        # it was traced with, which fails on any other batch.
        vote = torch.zeros(num_points * self.num_neighbors, num_points)
        vote[torch.arange(vote.shape[0]), self.neighbors.reshape(-1)] = 1.0
        self.register_buffer("vote", vote, persistent=False)

    def _fused(self, f8: torch.Tensor, f16: torch.Tensor) -> torch.Tensor:
        # A constant factor where it is exact (an even grid), not f8's shape: the export then needs
        # no shape arithmetic before the resize.
        lateral = self.lateral(f16)
        up = (F.interpolate(lateral, scale_factor=2.0, mode="nearest") if self.grid % 2 == 0
              else F.interpolate(lateral, size=f8.shape[-2:], mode="nearest"))
        return self.fuse(f8 + up)

    def forward(self, f8: torch.Tensor, f16: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self._fused(f8, f16)
        out = {"score": self.score(f), "offset": self.offset(f)}
        if self.nb_offset is not None:
            out["nb_offset"] = self.nb_offset(f)
        return out

    def predict(self, f8: torch.Tensor, f16: torch.Tensor) -> torch.Tensor:
        """``decode(forward(f8, f16))``, computing the offsets only at each point's chosen cell: the
        offset maps are needed whole for training, but inference reads one cell of them per point,
        so the 1x1 offset convolutions become dot products there (float, where the maps would be
        int8 in a quantized export). Written so that ONNX export gives a short graph: constant
        shapes, no batch-size arithmetic."""
        f = self._fused(f8, f16)
        k, c, cells = self.num_points, self.score.in_channels, self.grid * self.grid
        idx = self.score(f).reshape(-1, k, cells).argmax(2)  # (B, K)
        feat = torch.gather(f.reshape(-1, c, cells), 2, idx.unsqueeze(1).expand(-1, c, -1))  # (B, C, K)
        convs = [self.offset] + ([self.nb_offset] if self.nb_offset is not None else [])
        weight = torch.cat([m.weight for m in convs]).reshape(-1, k, c).transpose(1, 2)  # (G, C, K)
        bias = torch.cat([m.bias for m in convs]).reshape(-1, k)  # (G, K)
        values = (feat.unsqueeze(1) * weight).sum(2) + bias  # (B, G, K)
        return self._points(idx, values[:, :2], values[:, 2:])

    def _gather(self, maps: torch.Tensor, idx: torch.Tensor, groups: int) -> torch.Tensor:
        """maps (B, groups*K, H, W), idx (B, K) or (B, K, M) flat cells -> (B, groups, K) or
        (B, groups, K, M) values at those cells."""
        b = maps.shape[0]
        k = self.num_points
        flat = maps.reshape(b, groups, k, -1)
        one = idx.dim() == 2
        cells = idx[..., None] if one else idx
        values = torch.gather(flat, 3, cells[:, None].expand(b, groups, k, cells.shape[2]))
        return values.squeeze(3) if one else values

    def _points(self, idx: torch.Tensor, own: torch.Tensor, nb: torch.Tensor) -> torch.Tensor:
        """Argmax cells (B, K), offsets there (B, 2, K) and neighbour offsets (B, 2 * neighbours, K;
        x then y, each neighbour by neighbour) -> (B, K, 2) points in input pixels."""
        k, w = self.num_points, self.grid
        # Cell coordinates are looked up in a table built from Python ints (a constant in an export)
        # rather than computed from idx: integer floor division exports as a dozen ONNX nodes.
        cell = torch.arange(w * w, device=idx.device)
        cells = torch.stack([cell % w, torch.div(cell, w, rounding_mode="floor")]).to(own.dtype)  # (2, HW): x, y
        xy = cells[:, idx].transpose(0, 1)  # (B, 2, K)
        pos = xy + own
        if self.num_neighbors:
            n = self.num_neighbors
            # Point i's cell votes for neighbour j = neighbors[i, m]; average each point's own estimate
            # with every vote it receives. Votes come in (m, i) order here, so the vote matrix's rows
            # (made in (i, m) order) are reordered to match.
            votes = (xy.unsqueeze(2) + nb.reshape(-1, 2, n, k)).reshape(-1, 2, n * k)
            vote = self.vote.to(own.dtype).reshape(k, n, k).transpose(0, 1).reshape(n * k, k)
            pos = (pos + votes @ vote) / (1.0 + vote.sum(0))
        return (pos * self.stride - 0.5).transpose(1, 2)

    def decode(self, out: dict[str, torch.Tensor]) -> torch.Tensor:
        score = out["score"]
        idx = score.flatten(2).argmax(2)
        own = self._gather(out["offset"], idx, 2)
        nb = self._gather(out["nb_offset"], idx, 2 * self.num_neighbors) if self.nb_offset is not None else own[:, :0]
        return self._points(idx, own, nb)

    def loss(self, out: dict[str, torch.Tensor], target: torch.Tensor) -> dict[str, torch.Tensor]:
        score = out["score"]
        b, k, h, w = score.shape
        u = (target + 0.5) / self.stride  # continuous grid units
        cell = u.floor().clamp(0, self.grid - 1)
        # Soft one-hot over cells: a Gaussian around the true sub-cell position, so that neighbouring
        # cells are not punished as hard as far ones.
        ys = torch.arange(h, dtype=score.dtype, device=score.device) + 0.5
        xs = torch.arange(w, dtype=score.dtype, device=score.device) + 0.5
        d2 = (xs[None, None, None, :] - u[..., 0, None, None]) ** 2 + (ys[None, None, :, None] - u[..., 1, None, None]) ** 2
        soft = torch.exp(-d2 / (2 * self.sigma ** 2)).reshape(b, k, -1)
        soft = soft / soft.sum(-1, keepdim=True).clamp_min(1e-12)
        logp = F.log_softmax(score.reshape(b, k, -1), dim=-1)
        cls = -(soft * logp).sum(-1).mean()
        # Offsets are learnt at the true cell AND the cells around it: the score's argmax often lands
        # on a neighbouring cell, where an offset learnt only at the true cell is noise (figures:
        # docs/training.md, "the 8 cells around it").
        r = self.offset_radius
        steps = torch.arange(-r, r + 1, device=score.device, dtype=score.dtype)
        around = torch.stack(torch.meshgrid(steps, steps, indexing="xy"), -1).reshape(-1, 2)  # (M, 2) dx, dy
        cells = cell[:, :, None, :] + around  # (B, K, M, 2)
        inside = ((cells >= 0) & (cells <= self.grid - 1)).all(-1).to(score.dtype)
        cells = cells.clamp(0, self.grid - 1)
        idx = (cells[..., 1] * w + cells[..., 0]).long()  # (B, K, M)

        def masked_l1(pred: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
            """pred, tgt (B, K, M, ..., 2): mean absolute error over the cells inside the grid."""
            e = (pred - tgt).abs().reshape(b, k, len(around), -1).mean(-1)
            return (e * inside).sum() / inside.sum()

        off = self._gather(out["offset"], idx, 2).permute(0, 2, 3, 1)  # (B, K, M, 2)
        reg = masked_l1(off, u[:, :, None, :] - cells)
        terms = {"cls": cls, "offset": reg}
        total = cls + 2.0 * reg
        if self.nb_offset is not None:
            n = self.num_neighbors
            nb = self._gather(out["nb_offset"], idx, 2 * n).reshape(b, 2, n, k, -1).permute(0, 3, 4, 2, 1)  # b,k,m,n,2
            nb_u = u[:, self.neighbors.reshape(-1)].reshape(b, k, 1, n, 2)
            terms["neighbor"] = masked_l1(nb, nb_u - cells[:, :, :, None, :])
            total = total + terms["neighbor"]
        terms["total"] = total
        return terms


@register_head("regression")
class RegressionHead(Head):
    """Global pooling + a linear layer to 2K numbers: the classic direct-regression baseline."""

    def __init__(self, channels: tuple[int, int], num_points: int, input_size: int,
                 neighbors: list[list[int]] | None = None, sigma: float = 0.0):
        super().__init__()
        self.num_points = num_points
        self.input_size = input_size
        self.fc = nn.Linear(channels[1], 2 * num_points)
        nn.init.zeros_(self.fc.weight)
        nn.init.constant_(self.fc.bias, 0.5)  # start at the crop centre

    def forward(self, f8: torch.Tensor, f16: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"coords": self.fc(f16.mean(dim=(2, 3)))}

    def decode(self, out: dict[str, torch.Tensor]) -> torch.Tensor:
        c = out["coords"].reshape(-1, self.num_points, 2)
        return c * self.input_size - 0.5

    def loss(self, out: dict[str, torch.Tensor], target: torch.Tensor) -> dict[str, torch.Tensor]:
        pred = out["coords"].reshape(-1, self.num_points, 2)
        u = (target + 0.5) / self.input_size
        reg = wing_loss(pred * 100, u * 100)  # wing's width is tuned for errors in percent of the crop
        return {"wing": reg, "total": reg}


def wing_loss(pred: torch.Tensor, target: torch.Tensor, w: float = 10.0, eps: float = 2.0) -> torch.Tensor:
    """Wing loss (Feng et al. 2018): log-shaped for small errors so they keep a useful gradient."""
    x = (pred - target).abs()
    c = w - w * torch.log(torch.tensor(1.0 + w / eps, dtype=x.dtype))
    return torch.where(x < w, w * torch.log1p(x / eps), x - c).mean()
