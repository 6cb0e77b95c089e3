"""Building blocks: plain conv blocks, P4 group convolutions (e2cnn), multi-scale convolutions."""
from symbench.models.layers.blocks import ConvBlock, Normalize, global_max_pool
from symbench.models.layers.p4 import P4Block, P4Lift, group_max_pool
from symbench.models.layers.scale import ScaleConv

__all__ = ["ConvBlock", "Normalize", "global_max_pool", "P4Block", "P4Lift", "group_max_pool", "ScaleConv"]
