"""Sparse molecular graphs for a padded batch: real atoms flattened once, edges i != j within each molecule.

EDM (Hoogeboom et al. 2022, code ``egnn/models.py::get_adj_matrix``) runs message passing over the dense
``B·N·N`` edge list of a padded batch and multiplies messages by ``edge_mask`` (real–real pairs, no self
loops). Here only the real edges are built, once per batch, and reused across layers and diffusion steps.
Edges are ordered row-major (by sender row ``i``, then ``j``), the same order as EDM's dense list with the
masked edges removed, so sums over edges add the same terms in the same order.

Shapes: ``B`` molecules, ``N`` padded slots, ``M`` real atoms in the batch, ``E`` real edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class MolGraph:
    """Index structure of a padded batch (all tensors on one device, dtype long unless said).

    Attributes:
        batch_size: ``B``; n_slots: ``N`` (padded size).
        node_index: (M,) flat index ``b·N + n`` of every real atom into the (B·N) padded rows, ascending.
        batch: (M,) molecule id of each real atom.
        n_atoms: (B,) real atoms per molecule.
        row, col: (E,) edge endpoints as indices into the M real atoms (message flows ``col → row``,
            aggregated at ``row`` as EDM's ``unsorted_segment_sum(…, row)``).
    """

    batch_size: int
    n_slots: int
    node_index: torch.Tensor
    batch: torch.Tensor
    n_atoms: torch.Tensor
    row: torch.Tensor
    col: torch.Tensor

    @property
    def num_atoms(self) -> int:
        return int(self.node_index.numel())

    @property
    def num_edges(self) -> int:
        return int(self.row.numel())

    def to_flat(self, padded: torch.Tensor) -> torch.Tensor:
        """(B, N, F) padded tensor -> (M, F) rows of the real atoms."""
        b, n = padded.shape[:2]
        if (b, n) != (self.batch_size, self.n_slots):
            raise ValueError(
                f"tensor of shape {tuple(padded.shape)} does not match the graph's "
                f"(B, N) = ({self.batch_size}, {self.n_slots})"
            )
        return padded.reshape(b * n, -1)[self.node_index]

    def to_padded(self, flat: torch.Tensor) -> torch.Tensor:
        """(M, F) real-atom rows -> (B, N, F) with zeros in the padded slots."""
        out = flat.new_zeros(self.batch_size * self.n_slots, flat.shape[-1])
        out[self.node_index] = flat
        return out.view(self.batch_size, self.n_slots, flat.shape[-1])

    def molecule_sum(self, flat: torch.Tensor) -> torch.Tensor:
        """(M, F) -> (B, F): sum over the real atoms of each molecule."""
        out = flat.new_zeros(self.batch_size, flat.shape[-1])
        return out.index_add_(0, self.batch, flat)


def _as_atom_mask(node_mask: torch.Tensor) -> torch.Tensor:
    """node_mask (B, N, 1) or (B, N), values 0/1 -> bool (B, N)."""
    if node_mask.dim() == 3:
        if node_mask.shape[-1] != 1:
            raise ValueError(f"node_mask must be (B, N, 1) or (B, N); got {tuple(node_mask.shape)}")
        node_mask = node_mask[..., 0]
    if node_mask.dim() != 2:
        raise ValueError(f"node_mask must be (B, N, 1) or (B, N); got {tuple(node_mask.shape)}")
    if node_mask.dtype != torch.bool:
        if not bool(((node_mask == 0) | (node_mask == 1)).all()):
            raise ValueError("node_mask must hold only 0 and 1")
        node_mask = node_mask != 0
    return node_mask


def build_graph(node_mask: torch.Tensor) -> MolGraph:
    """Fully connected graph (i != j) inside each molecule of a padded batch, no work on padding.

    Args:
        node_mask: (B, N, 1) or (B, N), 1 for real atoms (need not be contiguous).
    Returns:
        MolGraph with E = Σ_b n_b (n_b − 1) edges, ordered by (molecule, i, j).
    """
    mask = _as_atom_mask(node_mask)
    b, n = mask.shape
    device = mask.device
    node_index = torch.nonzero(mask.reshape(-1), as_tuple=False).squeeze(1)
    batch = torch.div(node_index, n, rounding_mode="floor")
    n_atoms = mask.sum(dim=1).long()
    mol_start = torch.cumsum(n_atoms, 0) - n_atoms  # (B,) first flat atom of each molecule
    m = node_index.numel()
    local = torch.arange(m, device=device) - mol_start[batch]  # (M,) index inside its molecule
    degree = (n_atoms[batch] - 1).clamp(min=0)  # (M,) neighbours of each atom
    row = torch.repeat_interleave(torch.arange(m, device=device), degree)
    edge_start = torch.cumsum(degree, 0) - degree
    k = torch.arange(row.numel(), device=device) - edge_start[row]  # k-th neighbour of its row atom
    j_local = k + (k >= local[row]).long()  # skip the self loop
    col = mol_start[batch[row]] + j_local
    return MolGraph(b, n, node_index, batch, n_atoms, row, col)


def graph_from_edge_mask(node_mask: torch.Tensor, edge_mask: torch.Tensor) -> MolGraph:
    """Graph with exactly the real–real pairs that EDM's ``edge_mask`` keeps (any pattern, e.g. cut-offs).

    Args:
        node_mask: (B, N, 1) or (B, N).
        edge_mask: (B·N·N, 1), (B, N, N) or (B, N, N, 1), EDM's layout (row i, column j).
    """
    mask = _as_atom_mask(node_mask)
    b, n = mask.shape
    em = edge_mask.reshape(b, n, n) != 0
    em = em & mask[:, :, None] & mask[:, None, :]
    base = build_graph(mask)
    slot_of_atom = base.node_index  # flat slot b·N + n of each real atom
    atom_of_slot = torch.full((b * n,), -1, dtype=torch.long, device=mask.device)
    atom_of_slot[slot_of_atom] = torch.arange(slot_of_atom.numel(), device=mask.device)
    bb, ii, jj = torch.nonzero(em, as_tuple=True)  # row-major: same order as EDM's dense list
    row = atom_of_slot[bb * n + ii]
    col = atom_of_slot[bb * n + jj]
    return MolGraph(b, n, base.node_index, base.batch, base.n_atoms, row, col)


def fully_connected_edge_mask(node_mask: torch.Tensor) -> torch.Tensor:
    """EDM's edge mask (B·N·N, 1) for a padded batch: real–real pairs without the diagonal.

    EDM builds it in ``qm9/data/collate.py`` and ``qm9/sampling.py``; provided for callers that need the
    dense form (tests, EDM-style code). Our model does not need it.
    """
    dtype = node_mask.dtype if node_mask.is_floating_point() else torch.get_default_dtype()
    mask = _as_atom_mask(node_mask)
    b, n = mask.shape
    em = mask[:, :, None] & mask[:, None, :]
    em = em & ~torch.eye(n, dtype=torch.bool, device=mask.device)[None]
    return em.reshape(b * n * n, 1).to(dtype)
