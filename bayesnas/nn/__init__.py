"""Plain PyTorch building blocks of the search spaces (no Pyro): the stand-alone networks of
exported architectures are built from these modules alone."""

from bayesnas.nn.cell_network import (
    CELL_KINDS,
    Cell,
    CellNetwork,
    decode_genotype,
    encode_genotype,
    input_labels,
    random_genotype,
    unused_nodes,
)
from bayesnas.nn.cell_ops import OPS, make_op

__all__ = [
    "CELL_KINDS",
    "OPS",
    "Cell",
    "CellNetwork",
    "decode_genotype",
    "encode_genotype",
    "input_labels",
    "make_op",
    "random_genotype",
    "unused_nodes",
]
