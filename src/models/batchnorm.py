"""Batch normalisation: trained through PyTorch's NCHW kernels where its CPU channels-last kernel is slow, and
fused into the convolutions for inference.

On CPUs, the backward pass of batch normalisation on a channels-last tensor whose channel count is not a multiple
of 16 is several times slower than on the same tensor in NCHW layout (docs/speed.md has the measurements).
:class:`BatchNorm2d` runs such layers in NCHW during training on a CPU: the input is copied to NCHW once, the
forward and backward kernels run there, and the output and the input's gradient go back to channels-last.
Everything else is ``nn.BatchNorm2d``: the same parameters, buffers, running statistics and results (to float
rounding), and the same evaluation.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

FAST_CHANNEL_MULTIPLE = 16  # channel counts at which the CPU channels-last kernels are fast


def needs_nchw_kernels(x: torch.Tensor) -> bool:
    """True for a channels-last 4-D CPU tensor whose channel count makes PyTorch's channels-last kernel slow."""
    if x.device.type != "cpu" or x.dim() != 4 or x.stride(1) != 1 or x.is_contiguous():
        return False  # not channels-last
    return x.shape[1] > 1 and x.shape[1] % FAST_CHANNEL_MULTIPLE != 0


class _BatchNormInNCHW(torch.autograd.Function):
    """Training-mode batch norm of a channels-last input, computed on an NCHW copy; returns channels-last."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, momentum: float, eps: float):
        nchw = x.contiguous()
        out, mean, invstd = torch.ops.aten.native_batch_norm(
            nchw, weight, bias, running_mean, running_var, True, momentum, eps
        )[:3]
        ctx.save_for_backward(nchw, weight, mean, invstd)
        ctx.eps = eps
        return out.contiguous(memory_format=torch.channels_last)

    @staticmethod
    def backward(ctx, grad):
        nchw, weight, mean, invstd = ctx.saved_tensors
        wanted = [ctx.needs_input_grad[0], weight is not None and ctx.needs_input_grad[1], ctx.needs_input_grad[2]]
        grad_x, grad_weight, grad_bias = torch.ops.aten.native_batch_norm_backward(
            grad.contiguous(), nchw, weight, None, None, mean, invstd, True, ctx.eps, wanted
        )
        if grad_x is not None:
            grad_x = grad_x.contiguous(memory_format=torch.channels_last)
        return grad_x, grad_weight, grad_bias, None, None, None, None


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d``; in training, on a channels-last input with a slow channel count, run in NCHW."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not needs_nchw_kernels(x) or torch.compiler.is_compiling():
            return super().forward(x)  # torch.compile writes its own kernels for batch norm
        self._check_input_dim(x)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # a cumulative moving average, as nn.BatchNorm2d keeps it
                momentum = 1.0 / float(self.num_batches_tracked)
        running_mean = self.running_mean if self.track_running_stats else None
        running_var = self.running_var if self.track_running_stats else None
        return _BatchNormInNCHW.apply(x, self.weight, self.bias, running_mean, running_var, momentum, self.eps)


def fuse_batchnorm(net: nn.Module) -> nn.Module:
    """A copy of ``net`` for inference with every Conv2d -> BatchNorm2d pair fused into one convolution
    (``torch.nn.utils.fusion.fuse_conv_bn_eval``): the same output, to float rounding, for one layer's work."""
    fused = copy.deepcopy(net).eval()
    for module in fused.modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (conv_name, conv), (bn_name, bn) in zip(children, children[1:], strict=False):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                setattr(module, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(module, bn_name, nn.Identity())
    return fused
