"""Loss terms of the joint autoencoder.

Eq. (3) of Laakom et al. (2023)::

    L = (1/N) sum_i ( ||phi_i - c||^2 + sum_v ||D_v(E_v(x_i^v)) - x_i^v||^2 )

with ``c = 0`` in the paper. Squared norms are sums over all elements, as
written in the paper, not means.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def compactness(phi: Tensor, center: Tensor | None = None) -> Tensor:
    """Per-sample squared distance of the joint latent to the centre.

    Parameters
    ----------
    phi : Tensor of shape (n, D)
        Joint latents.
    center : Tensor of shape (D,), optional
        The hypersphere centre; the origin when omitted (the paper).

    Returns
    -------
    Tensor of shape (n,)
        ``||phi_i - c||^2``.
    """
    diff = phi if center is None else phi - center
    return diff.pow(2).sum(dim=1)


def reconstruction(inputs: dict[str, Tensor], recons: dict[str, Tensor]) -> Tensor:
    """Per-sample squared reconstruction error summed over views.

    Parameters
    ----------
    inputs : dict of str to Tensor
        Scaled inputs, one per view.
    recons : dict of str to Tensor
        Reconstructions with the same keys and shapes.

    Returns
    -------
    Tensor of shape (n,)
        ``sum_v ||xhat_v - x_v||^2``.
    """
    return sum(view_reconstruction(inputs[name], recons[name]) for name in inputs)  # type: ignore[return-value]


def view_reconstruction(x: Tensor, xhat: Tensor) -> Tensor:
    """Per-sample squared reconstruction error of one view.

    Parameters
    ----------
    x, xhat : Tensor of shape (n, ...)
        Input and reconstruction.

    Returns
    -------
    Tensor of shape (n,)
        ``||xhat - x||^2`` summed over all but the first axis.
    """
    return (xhat - x).pow(2).flatten(1).sum(dim=1)


DIVERSITY_KINDS = ("direct", "det", "logdet")


def unit_similarity(units: Tensor, gamma: float) -> Tensor:
    """Pairwise similarity of the units of one layer, per sample.

    Parameters
    ----------
    units : Tensor of shape (n, C, M)
        The output of each of the C units (a channel's flattened feature map,
        ``M = H * W``; ``M = 1`` for a dense layer).
    gamma : float
        Bandwidth of the Gaussian similarity.

    Returns
    -------
    Tensor of shape (n, C, C)
        ``S[i, a, b] = exp(-gamma * ||phi_a(x_i) - phi_b(x_i)||^2)``.
    """
    sq = units.pow(2).sum(dim=2)
    dist = sq.unsqueeze(2) + sq.unsqueeze(1) - 2.0 * units @ units.transpose(1, 2)
    return torch.exp(-gamma * dist.clamp_min(0.0))


def diversity(units: Tensor, kind: str, *, gamma: float = 1.0, eps: float = 1e-3) -> Tensor:
    """WLD-Reg within-layer diversity penalty, averaged over the batch.

    Our reading of Laakom et al., "WLD-Reg" (AAAI 2023); see DESIGN.md §7.
    With ``S`` from :func:`unit_similarity`:

    * ``direct``: ``sum_{a != b} S_ab``;
    * ``det``: ``-det(S)``. For many units (large C) or small ``gamma`` the
      determinant underflows to 0 and its gradient vanishes: prefer ``logdet``;
    * ``logdet``: ``-log det(S + eps I)``, through a Cholesky factorisation,
      finite even when all units are identical (``S`` of rank 1).

    Minimising the penalty pushes the units of the layer apart.

    Parameters
    ----------
    units : Tensor of shape (n, C, M)
        Unit outputs per sample.
    kind : {"direct", "det", "logdet"}
        The variant.
    gamma : float, default 1.0
        Similarity bandwidth.
    eps : float, default 1e-3
        Jitter added to the diagonal for ``logdet``.

    Returns
    -------
    Tensor
        A scalar penalty.

    Raises
    ------
    ValueError
        For an unknown ``kind``.
    """
    if kind not in DIVERSITY_KINDS:
        raise ValueError(f"unknown diversity regularizer {kind!r}; choose one of {list(DIVERSITY_KINDS)}")
    sim = unit_similarity(units, gamma)
    if kind == "direct":
        n_units = sim.shape[-1]
        return (
            (sim.sum(dim=(1, 2)) - sim.diagonal(dim1=1, dim2=2).sum(dim=1)).mean()
            if n_units > 1
            else sim.new_zeros(())
        )
    if kind == "det":
        return -torch.linalg.det(sim).mean()
    eye = torch.eye(sim.shape[-1], dtype=sim.dtype, device=sim.device)
    chol = torch.linalg.cholesky(sim + eps * eye)
    return -(2.0 * chol.diagonal(dim1=1, dim2=2).log().sum(dim=1)).mean()


@dataclass
class LossTerms:
    """Batch means of the three terms of the training loss (unweighted).

    Attributes
    ----------
    compactness : Tensor
        Mean ``||phi - c||^2``.
    reconstruction : Tensor
        Mean squared reconstruction error summed over views.
    diversity : Tensor
        The WLD-Reg penalty summed over views (0 when switched off).
    """

    compactness: Tensor
    reconstruction: Tensor
    diversity: Tensor

    def stacked(self) -> Tensor:
        """Return the three terms as one detached float tensor ``(3,)``."""
        return torch.stack([self.compactness, self.reconstruction, self.diversity]).detach().float()


class JointLoss:
    """The training loss of the joint autoencoder: eq. (3), weighted, plus diversity.

    ``loss = compact_weight * compactness + recon_weight * reconstruction
    + diversity_weight * diversity``, each term a batch mean.

    Parameters
    ----------
    center : Tensor or None
        Compactness centre; None for the origin (the paper).
    units : dict of str to int
        Number of units (channels, or latent width of a vector view) of each
        view's bottleneck, for the diversity penalty.
    compact_weight, recon_weight : float, default 1.0
        Weights of the two terms of eq. (3).
    diversity : {None, "direct", "det", "logdet"}, default None
        WLD-Reg regularizer on each view's bottleneck.
    diversity_weight : float, default 0.0
        Its weight lambda.
    diversity_gamma : float, default 1.0
        Its similarity bandwidth gamma.

    Examples
    --------
    >>> loss = JointLoss(center=None, units={"left": 2})
    >>> phi = torch.ones(4, 2)
    >>> x = torch.zeros(4, 3)
    >>> terms = loss.terms(phi, {"left": phi}, {"left": x}, {"left": x})
    >>> float(loss.total(terms))
    2.0
    """

    def __init__(
        self,
        *,
        center: Tensor | None,
        units: dict[str, int],
        compact_weight: float = 1.0,
        recon_weight: float = 1.0,
        diversity: str | None = None,
        diversity_weight: float = 0.0,
        diversity_gamma: float = 1.0,
    ) -> None:
        if diversity is not None and diversity not in DIVERSITY_KINDS:
            raise ValueError(
                f"unknown diversity regularizer {diversity!r}; choose one of {list(DIVERSITY_KINDS)}"
            )
        self.center = center
        self.units = dict(units)
        self.compact_weight = float(compact_weight)
        self.recon_weight = float(recon_weight)
        self.diversity = diversity
        self.diversity_weight = float(diversity_weight)
        self.diversity_gamma = float(diversity_gamma)

    def terms(
        self,
        phi: Tensor,
        latents: dict[str, Tensor],
        inputs: dict[str, Tensor],
        recons: dict[str, Tensor],
    ) -> LossTerms:
        """Compute the unweighted batch-mean terms (in float32, also under autocast).

        Parameters
        ----------
        phi : Tensor of shape (n, D)
            Joint latents.
        latents : dict of str to Tensor
            Flattened latent of each view.
        inputs, recons : dict of str to Tensor
            Scaled inputs and their reconstructions.

        Returns
        -------
        LossTerms
            Compactness, reconstruction and diversity.
        """
        compact = compactness(phi.float(), self.center).mean()
        recon = reconstruction(
            {k: v.float() for k, v in inputs.items()}, {k: v.float() for k, v in recons.items()}
        ).mean()
        div = compact.new_zeros(())
        if self.diversity is not None:
            for name, latent in latents.items():
                units = latent.float().reshape(len(latent), self.units[name], -1)
                div = div + diversity(units, self.diversity, gamma=self.diversity_gamma)
        return LossTerms(compact, recon, div)

    def total(self, terms: LossTerms) -> Tensor:
        """Return the weighted sum of the terms (the value that is minimised)."""
        return (
            self.compact_weight * terms.compactness
            + self.recon_weight * terms.reconstruction
            + self.diversity_weight * terms.diversity
        )

    def weighted(self, compact: float, recon: float, div: float) -> float:
        """Return the weighted sum of plain-number terms (epoch means in the history)."""
        total = self.compact_weight * compact + self.recon_weight * recon
        total += self.diversity_weight * div
        return total
