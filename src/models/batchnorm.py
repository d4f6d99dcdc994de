"""Batch normalisation that trains channels-last networks through PyTorch's faster NCHW kernels where it must.

On CPU (torch 2.13), the backward pass of batch normalisation on a channels-last tensor whose channel count is not a
multiple of 16 is 8-40x slower than on the same tensor in NCHW layout (1.25 M elements on a 2-core Xeon with AMX,
bf16: 8 channels 18.9 ms against 0.7 ms, 12: 16.1 against 0.6, 20: 9.4 against 0.7, 2: 5.8 against 0.7; at 16, 32,
48, 64 and above both are fast, 1.1-1.3 against 0.7 ms). The CPU recipe's networks have 8 channels at full
resolution, where its pair spent about 166 ms of a 380 ms step in that one kernel. :class:`BatchNorm2d` runs such
layers in NCHW during training: the input is copied to NCHW once, the forward and backward kernels run there,
and the output and the input's gradient go back to channels-last (three copies of about 0.3 ms for the recipe's
(4, 8, 256, 256) tensors). Everything else is ``nn.BatchNorm2d``: the same parameters, buffers, running statistics
and results (to float rounding; nearer to a float64 computation than the channels-last kernel's, whose weight
gradient on 8 channels of 1 M pixels each was off by 2.5e-4 relative against 2e-6), and the same evaluation.
"""

from __future__ import annotations

import torch
from torch import nn

FAST_CHANNEL_MULTIPLE = 16  # channel counts at which the channels-last kernels are fast (measured: see above)


def needs_nchw_kernels(x: torch.Tensor) -> bool:
    """True for a channels-last 4-D tensor whose channel count makes PyTorch's channels-last kernel slow."""
    if x.dim() != 4 or x.stride(1) != 1 or x.is_contiguous():
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
