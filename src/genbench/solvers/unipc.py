"""UniPC (Zhao et al. 2023): multistep predictor UniP-p with corrector UniC, data prediction, B(h) "bh2".

Around a point s with data prediction m_s, the exact solution of the probability-flow ODE is
x_t = (sigma_t / sigma_s) x_s + alpha_t sum_k psi_k(h) m^(k)(lambda_s), h = lambda_t - lambda_s, with
psi_0 = 1 - e^{-h} and psi_k = h^k / k! - psi_{k-1} (e^{-h} int_0^h e^u u^k / k! du). UniPC
approximates the derivatives with divided differences D_m = (m_m - m_s) / r_m at earlier (or, in the
corrector, the new) points, r_m = (lambda_m - lambda_s) / h:

    x_t = (sigma_t / sigma_s) x_s + alpha_t psi_0 m_s + alpha_t B(h) sum_m a_m D_m,

where the a_m solve sum_m a_m r_m^(k-1) = k! psi_k(h) / (B(h) h^k) for k = 1..K (Zhao et al.,
Sec. 3, the linear system R_p(h) a_p = g_p(h) / B(h)), here with B(h) = psi_0(h) = 1 - e^{-h}
("bh2"). A one-equation system is not solved: a_1 = 1/2, which has the same order since
B(h) = h + O(h^2) (the choice of the authors' and diffusers' implementations).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genbench.solvers.base import Denoiser, SolverResult, full_t
from genbench.solvers.dpm_solver import exp_step
from genbench.solvers.ode import scalars


def unipc_weights(r: list[float], h: float) -> list[float]:
    """The a_m for nodes r_m: solve sum_m a_m r_m^(k-1) = k! psi_k(h) / (B(h) h^k), k = 1..len(r)."""
    if len(r) == 1:
        return [0.5]
    b = -math.expm1(-h)  # B(h) = psi_0(h)
    psi, rhs = b, []
    for k in range(1, len(r) + 1):
        psi = h**k / math.factorial(k) - psi
        rhs.append(math.factorial(k) * psi / (b * h**k))
    R = torch.tensor([[rm ** (k - 1) for rm in r] for k in range(1, len(r) + 1)], dtype=torch.float64)
    return torch.linalg.solve(R, torch.tensor(rhs, dtype=torch.float64)).tolist()


def unipc_update(x_s: Tensor, m_s: Tensor, lam_s: float, points: list[tuple[float, Tensor]], lam_t: float,
                 alpha_t: float, sigma_s: float, sigma_t: float) -> Tensor:
    """x_t from (x_s, m_s) and the data predictions ``points`` [(lambda_m, m_m)] at other nodes."""
    h = lam_t - lam_s
    x = exp_step(x_s, m_s, alpha_t, sigma_s, sigma_t, h)
    if not points:
        return x
    r = [(lam_m - lam_s) / h for lam_m, _ in points]
    a = unipc_weights(r, h)
    correction = sum(a_m * (m - m_s) / r_m for a_m, r_m, (_, m) in zip(a, r, points, strict=True))
    return x + (alpha_t * -math.expm1(-h)) * correction


@torch.inference_mode()
def sample_unipc(denoise: Denoiser, x: Tensor, path, ts: Tensor, order: int = 2,
                 corrector: bool = True) -> SolverResult:
    """UniPC-bh2: UniP-p predictor (order p) and UniC corrector (order p + 1). NFE = N.

    Step i evaluates m_i = x0_hat(x_i, t_i); UniC then corrects x_i (predicted from x_{i-1}) with
    m_i as a new node, at no extra cost (m_i is kept as evaluated, at the predicted x_i), and
    UniP-p steps on with the last p data predictions. The order is lowered while the history is
    short and, on grids ending at t = 0, towards the end: p_i = min(order, i + 1, N - i), so the
    step into t = 0 is first order and returns x0_hat (diffusers' ``lower_order_final`` with
    ``final_sigmas_type="zero"``).
    """
    alpha, sigma = scalars(path, ts)
    lam, t = path.log_snr(ts).tolist(), ts.tolist()
    n = len(t) - 1
    hist: list[tuple[float, Tensor]] = []  # (lambda_i, m_i), most recent last
    x_prev, p_prev = x, 0
    for i in range(n):
        m = denoise(x, full_t(x, t[i]))[0]
        if corrector and i > 0:
            (lam_s, m_s), earlier = hist[-1], hist[-p_prev:-1][::-1]
            nodes = earlier + [(lam[i], m)]
            x = unipc_update(x_prev, m_s, lam_s, nodes, lam[i], alpha[i], sigma[i - 1], sigma[i])
        hist = (hist + [(lam[i], m)])[-order:]
        p_prev = min(order, i + 1, n - i if t[-1] == 0.0 else order)
        x_prev = x
        nodes = hist[-p_prev:-1][::-1]
        x = unipc_update(x, m, lam[i], nodes, lam[i + 1], alpha[i + 1], sigma[i], sigma[i + 1])
    return SolverResult(x, n)
