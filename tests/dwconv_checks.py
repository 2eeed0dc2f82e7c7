"""Shared by the depthwise conv tests: the float64 reference conv and the
relative error the implementations are held to."""
import torch
import torch.nn.functional as F


def ref_conv(x, weight):
    """``F.conv2d`` depthwise, stride 1, "same" padding (odd kernels)."""
    kh, kw = weight.shape[-2:]
    return F.conv2d(x, weight, padding=(kh // 2, kw // 2), groups=x.shape[1])


def leaf(t):
    """A detached copy that requires grad."""
    return t.detach().clone().requires_grad_()


def rel_err(out, ref):
    """Max absolute error over the reference's max magnitude."""
    scale = ref.abs().max().item() or 1.0
    return (out.detach().double() - ref).abs().max().item() / scale
