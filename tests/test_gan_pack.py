"""PacGAN packing (Lin et al. 2018): D judges packs of ``method.pack`` samples, all real or all fake."""

from __future__ import annotations

import pytest
import torch

from genbench.cli import main
from genbench.config import GANConfig, MLPConfig
from genbench.methods.gan import GAN
from genbench.nets import build_net
from genbench.randomness import BatchDraws
from genbench.train.checkpoint import list_checkpoints, load_checkpoint


def test_pack_concatenates_consecutive_samples_along_channels():
    gan = GAN(GANConfig(pack=2))
    images = torch.arange(4 * 1 * 2 * 2, dtype=torch.float32).reshape(4, 1, 2, 2)
    packed = gan.pack(images)
    assert packed.shape == (2, 2, 2, 2)
    for i in range(2):
        for j in range(2):
            assert torch.equal(packed[i, j], images[2 * i + j, 0])
    points = torch.randn(6, 2)
    assert torch.equal(GAN(GANConfig(pack=3)).pack(points), points.reshape(2, 6))
    assert GAN(GANConfig()).pack(points) is points
    assert gan.net_shape("D", (3, 8, 8)) == (6, 8, 8) and gan.net_shape("G", (3, 8, 8)) == (3, 8, 8)


class Spy(torch.nn.Module):
    """Records the inputs D sees."""

    def __init__(self, net):
        super().__init__()
        self.net, self.seen = net, []

    def forward(self, x, t=None, y=None):
        self.seen.append(x)
        return self.net(x)


@pytest.mark.parametrize("loss", ["bce", "rpgan"])
def test_d_and_g_losses_score_packs_and_penalise_their_gradients(loss):
    m, n = 4, 8
    gan = GAN(GANConfig(loss=loss, pack=m, gamma=1.0))
    gan.draws = BatchDraws(torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    G = build_net(MLPConfig(kind="mlp_g", hidden=8, depth=1, z_dim=4), gan.net_shape("G", (2,)))
    D = Spy(build_net(MLPConfig(kind="mlp_d", hidden=8, depth=1), gan.net_shape("D", (2,))))
    x = torch.randn(n, 2)
    out = gan.loss({"G": G, "D": D}, "D", x, None)
    assert [s.shape for s in D.seen] == [(n // m, 2 * m)] * 2
    assert torch.equal(D.seen[0].detach(), x.reshape(n // m, 2 * m))   # the reals, packed in order
    assert out["r1"] > 0 and out["r2"] > 0 and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert all(p.grad is not None for p in D.parameters())
    D.seen.clear()
    gan.loss({"G": G, "D": D}, "G", x, None)["loss"].backward()
    assert all(s.shape == (n // m, 2 * m) for s in D.seen)
    assert all(p.grad is not None for p in G.parameters())


def test_a_batch_that_does_not_split_into_packs_is_refused():
    from genbench.errors import GenbenchError

    gan = GAN(GANConfig(pack=4))
    gan.draws = BatchDraws(torch.Generator().manual_seed(0))
    G = build_net(MLPConfig(kind="mlp_g", hidden=8, depth=1, z_dim=4), (2,))
    D = build_net(MLPConfig(kind="mlp_d", hidden=8, depth=1), (8,))
    with pytest.raises(GenbenchError, match="does not split into packs"):
        gan.loss({"G": G, "D": D}, "D", torch.randn(6, 2), None)


TOY = ["configs/toy2d/gan-r3.yaml", "data.name=grid", "data.n_points=512", "nets.G.hidden=16", "nets.D.hidden=16",
       "train.batch_size=32", "train.budget={steps: 4}", "train.ckpt_every=2", "train.sample_every=1000",
       "train.grid_n=64", "train.log_every=1", "train.tensorboard=false", "--no-progress"]


def test_a_packed_gan_trains_saves_and_samples_from_the_cli(env, capsys):
    run = env / "pac"
    assert main(["train", *TOY, "method.pack=4", "--out", str(run)]) == 0
    ckpt = load_checkpoint(list_checkpoints(run / "checkpoints")[4])
    first = next(v for k, v in ckpt["nets"]["D"].items() if k.endswith("weight"))
    assert first.shape[1] == 2 * 4                       # D's first layer reads a pack of 4 points
    assert main(["eval", str(run), "-n", "256", "--metrics", "modes"]) == 0
    assert main(["sample", str(run), "-n", "16", "--out", str(env / "s"), "--format", "npz"]) == 0

