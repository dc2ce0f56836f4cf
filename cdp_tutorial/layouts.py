"""How a tensor's channels are made of channel groups: the bookkeeping behind pruning any graph.

A conv's output channels are one *group*; a ``Concatenate`` stacks groups; a ``Flatten`` repeats a
group once per spatial position; a depthwise conv with ``depth_multiplier`` repeats each channel in
place, and a grouped conv turns each block of input channels (one conv group) into its own block
of outputs. :class:`Layout` records which, so that a tensor's width (for counting) and the indices
of its surviving channels (for slicing weights) follow from the groups' widths and kept channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Layout:
    """The channels of one tensor, expressed in channel groups.

    ``kind`` is one of

    ``"group"``   the channels of group ``group``, in order;
    ``"concat"``  the channels of ``parts``, one after another (``Concatenate``);
    ``"repeat"``  ``factor`` copies of ``parts[0]``, position-major (``Flatten`` of NHWC: ``p*C + c``);
    ``"expand"``  each block of ``block`` channels of ``parts[0]`` becomes ``factor`` channels, in
                  place: ``DepthwiseConv2D`` with ``depth_multiplier=m`` (``block=1``: channel
                  ``c*m + j``), or ``Conv2D(groups=g)`` on ``g*block`` channels with ``g*factor``
                  filters (conv group ``i`` reads input block ``i`` and writes output block ``i``).
    """

    kind: str
    group: int | None = None
    parts: tuple["Layout", ...] = ()
    factor: int = 1
    block: int = 1

    def coefficients(self, find) -> dict[int, float]:
        """Width as a linear combination of group widths: ``{root group: multiplier}``."""
        if self.kind == "group":
            return {find(self.group): 1}
        scale = {"concat": 1, "repeat": self.factor, "expand": self.factor / self.block}[self.kind]
        total: dict[int, float] = {}
        for part in self.parts:
            for g, c in part.coefficients(find).items():
                total[g] = total.get(g, 0) + c * scale
        return total

    def indices(self, kept: dict[int, np.ndarray], widths: dict[int, int], find) -> np.ndarray:
        """Indices (into the original tensor) of the channels that survive pruning.

        ``kept[g]`` holds the surviving channel indices of root group ``g``; ``widths[g]`` its
        original width.
        """
        if self.kind == "group":
            return kept[find(self.group)]
        if self.kind == "concat":
            out, offset = [], 0
            for part in self.parts:
                out.append(part.indices(kept, widths, find) + offset)
                offset += part.width(widths, find)
            return np.concatenate(out)
        inner = self.parts[0].indices(kept, widths, find)
        if self.kind == "repeat":
            c = self.parts[0].width(widths, find)
            return (np.arange(self.factor)[:, None] * c + inner[None, :]).ravel()
        # "expand": output block b (channels b*factor + j) for each surviving input block b; the
        # input keeps whole blocks (the planner prunes a grouped conv's input in whole conv groups)
        blocks = np.unique(inner // self.block)
        return (blocks[:, None] * self.factor + np.arange(self.factor)[None, :]).ravel()

    def width(self, widths: dict[int, int], find) -> int:
        """Width of the tensor for original group widths ``widths``."""
        return int(round(sum(c * widths[g] for g, c in self.coefficients(find).items())))


