"""Alignment: KL-regularized reward maximization and Direct Preference Optimization.

Week 16 of the course. Rafailov, Sharma, Mitchell, Ermon, Manning & Finn
(2023), "Direct Preference Optimization: Your Language Model is Secretly a
Reward Model" (NeurIPS 2023):

- the KL-regularized objective max_pi E_pi[r] - beta KL(pi || pi_ref) has
  the closed-form optimum pi*(y|x) = pi_ref(y|x) exp(r(x,y)/beta) / Z(x)
  (their eq. 4),
- so r(x,y) = beta log pi*(y|x)/pi_ref(y|x) + beta log Z(x) (eq. 5), and
  under the Bradley-Terry preference model p(y_w > y_l) = sigma(r_w - r_l)
  (eq. 1) the partition function cancels, which gives the DPO loss (eq. 7)
      L = -E log sigma( beta log pi(y_w)/pi_ref(y_w) - beta log pi(y_l)/pi_ref(y_l) ).

Everything is tabular here (a finite set of K responses per prompt), so the
optimum can be checked exactly. Float64 torch tensors in and out, numpy
accepted; scalars are Python floats.
"""

from __future__ import annotations

import torch
import torch.nn.functional as Fn

from sodl_ref.tensors import as_float64

Tensor = torch.Tensor

__all__ = [
    "dpo_loss",
    "dpo_implicit_reward",
    "bradley_terry_prob",
    "optimal_policy",
    "kl_regularized_objective",
    "optimal_objective_value",
    "dpo_population_loss",
]


def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
             beta: float = 0.1) -> float:
    """Mean DPO loss over a batch of preference pairs, Rafailov et al. (2023), eq. 7.

        u_i = beta [ (log pi(y_w,i) - log pi_ref(y_w,i)) - (log pi(y_l,i) - log pi_ref(y_l,i)) ]
        L   = mean_i -log sigma(u_i) = mean_i softplus(-u_i)

    computed as softplus(-u) so that it stays finite for |u| in the thousands
    (log-probabilities of long sequences are large and negative).

    Args:
        policy_chosen_logps, policy_rejected_logps: [B] log pi of the preferred
            (y_w) and dispreferred (y_l) responses under the trained policy.
        ref_chosen_logps, ref_rejected_logps: [B] the same under pi_ref.
        beta: strength of the KL regularization.

    Returns:
        The mean loss (Python float).
    """
    pw = as_float64(policy_chosen_logps)
    pl, rw, rl = (as_float64(t, pw.device) for t in (policy_rejected_logps, ref_chosen_logps, ref_rejected_logps))
    u = float(beta) * ((pw - rw) - (pl - rl))  # [B]
    return float(Fn.softplus(-u).mean())


def dpo_implicit_reward(policy_logps, ref_logps, beta: float = 0.1) -> Tensor:
    """The reward DPO's policy implicitly defines, beta log pi(y|x)/pi_ref(y|x) (eq. 5 without log Z).  Same shape."""
    p = as_float64(policy_logps)
    return float(beta) * (p - as_float64(ref_logps, p.device))


def bradley_terry_prob(reward_chosen, reward_rejected) -> Tensor:
    """Bradley-Terry (1952) preference probability p(y_w > y_l) = sigma(r_w - r_l) (Rafailov et al. eq. 1)."""
    a = as_float64(reward_chosen)
    return torch.sigmoid(a - as_float64(reward_rejected, a.device))


def optimal_policy(ref_probs, rewards, beta: float) -> Tensor:
    """Optimum of the KL-regularized objective, Rafailov et al. (2023), eq. 4.

        pi*(y) = pi_ref(y) exp(r(y) / beta) / Z,   Z = sum_y pi_ref(y) exp(r(y) / beta)

    computed in log space (a softmax of log pi_ref + r / beta), stable for
    small beta. Responses with pi_ref = 0 keep probability 0.

    Args:
        ref_probs: [..., K] reference probabilities (rows sum to one).
        rewards: [..., K] rewards.
        beta: > 0.

    Returns:
        pi*: [..., K].
    """
    ref = as_float64(ref_probs)
    r = as_float64(rewards, ref.device)
    logits = torch.log(ref) + r / float(beta)  # [..., K]; -inf where ref = 0
    return torch.softmax(logits, dim=-1)


def kl_regularized_objective(policy, ref_probs, rewards, beta: float) -> Tensor:
    """J(pi) = E_pi[r] - beta KL(pi || pi_ref) per row, [...] (Rafailov et al. eq. 3, one prompt per row)."""
    pi = as_float64(policy)
    ref = as_float64(ref_probs, pi.device)
    r = as_float64(rewards, pi.device)
    kl_terms = torch.where(pi > 0, pi * (torch.log(pi) - torch.log(ref)), torch.zeros_like(pi))
    return (pi * r).sum(-1) - float(beta) * kl_terms.sum(-1)


def optimal_objective_value(ref_probs, rewards, beta: float) -> Tensor:
    """max_pi J(pi) = beta log Z = beta log sum_y pi_ref(y) exp(r(y)/beta), per row [...] (Gibbs variational principle)."""
    ref = as_float64(ref_probs)
    r = as_float64(rewards, ref.device)
    return float(beta) * torch.logsumexp(torch.log(ref) + r / float(beta), dim=-1)


def dpo_population_loss(policy_logits, ref_probs, rewards, beta: float) -> Tensor:
    """Expected DPO loss over all pairs of K responses with Bradley-Terry labels.

    Pairs (i, j), i != j, are drawn uniformly; the label says i is preferred
    with probability sigma(r_i - r_j). With h = log pi - log pi_ref,

        L(pi) = mean_{i != j} sigma(r_i - r_j) * softplus(-beta (h_i - h_j)).

    Each pair's term is a logistic cross-entropy, minimized when
    beta (h_i - h_j) = r_i - r_j, i.e. at pi = pi* of :func:`optimal_policy`
    (Rafailov et al. 2023, Theorem 1 in the tabular case). Differentiable in
    ``policy_logits: [K]`` (pi = softmax(policy_logits)); returns a 0-d tensor.
    """
    z = as_float64(policy_logits)
    ref = as_float64(ref_probs, z.device)
    r = as_float64(rewards, z.device)
    h = torch.log_softmax(z, -1) - torch.log(ref)  # [K]
    K = h.shape[-1]
    pref = torch.sigmoid(r[:, None] - r[None, :])  # [K, K] Pr(i preferred to j)
    loss = pref * Fn.softplus(-float(beta) * (h[:, None] - h[None, :]))  # [K, K]
    off = ~torch.eye(K, dtype=torch.bool, device=z.device)
    return loss[off].mean()
