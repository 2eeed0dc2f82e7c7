"""Shared by the depthwise conv tests: the float64 reference conv and the
relative error the implementations are held to."""
import torch.nn.functional as F

from slak_mm.ops import relative_error


def ref_conv(x, weight):
    """``F.conv2d`` depthwise, stride 1, "same" padding (odd kernels)."""
    kh, kw = weight.shape[-2:]
    return F.conv2d(x, weight, padding=(kh // 2, kw // 2), groups=x.shape[1])


def leaf(t):
    """A detached copy that requires grad."""
    return t.detach().clone().requires_grad_()


#: Max absolute error over the reference's max magnitude (the dispatcher's
#: own measure, which it holds the implementations to).
rel_err = relative_error
