import pytest
import torch

from deepix.models import Spec, build_model, count_params, list_models


def _model(channels=1, classes=10, size=28, width=0.25):
    torch.manual_seed(0)
    return build_model("ddpm", Spec(channels, classes, (size, size), width=width))


@pytest.mark.parametrize("channels,size,classes", [(1, 28, 10), (1, 28, 0), (3, 32, 5), (3, 64, 0)])
def test_samples_have_the_shape_and_range_of_images(channels, size, classes):
    m = _model(channels, classes, size)
    assert (m.channels, m.size, m.num_classes) == (channels, (size, size), classes)
    assert m.latent(3).shape == (3, channels, size, size)
    x = m.sample(3, steps=2)
    assert x.shape == (3, channels, size, size) and x.min() >= 0 and x.max() <= 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = m.loss(torch.rand(4, channels, size, size), torch.randint(0, max(classes, 1), (4,)))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def _perturb(m):
    # a freshly built model predicts v = 0 (zero-initialised head), so labels could not matter yet
    with torch.no_grad():
        for p in m.net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    m.update_ema(0.0)


def test_sampling_is_deterministic_given_the_latent_and_follows_the_label():
    m = _model()
    _perturb(m)
    z = m.latent(4, torch.Generator().manual_seed(1))
    a = m.sample(4, torch.tensor([1, 2, 3, 4]), z=z, steps=3)
    assert torch.equal(a, m.sample(4, torch.tensor([1, 2, 3, 4]), z=z, steps=3))
    assert not torch.allclose(a, m.sample(4, torch.tensor([5, 6, 7, 8]), z=z, steps=3))
    guided = m.sample(4, torch.tensor([1, 2, 3, 4]), z=z, steps=3, guidance=3.0)
    assert guided.shape == a.shape and not torch.allclose(a, guided)
    assert torch.equal(m.latent(2, torch.Generator().manual_seed(1)), z[:2])


def test_unconditional_sampling_ignores_labels():
    m = _model(classes=0)
    _perturb(m)
    z = m.latent(2)
    assert torch.equal(m.sample(2, torch.tensor([0, 1]), z=z, steps=2), m.sample(2, z=z, steps=2, guidance=4.0))


def test_loss_is_finite_in_bf16_and_falls_on_a_fixed_batch():
    m = _model(width=0.5)
    x = torch.zeros(16, 1, 28, 28)
    x[:, :, 8:20, 12:16] = 1  # bars: an easy, fixed picture
    y = torch.arange(16) % 10
    opt = torch.optim.Adam(m.parameters(), 2e-3)
    losses = []
    for step in range(30):
        torch.manual_seed(step % 3)  # the same three (t, noise) draws over and over
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = m.loss(x, y)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) < 0.7 * sum(losses[:3])


def test_ema_moves_towards_the_live_weights_and_is_saved():
    m = _model()
    assert all(not b.requires_grad for b in m.ema.buffers())
    assert count_params(m) == count_params(m.net)  # the EMA copy is not trained
    with torch.no_grad():
        for p in m.net.parameters():
            p.add_(1.0)
    w, e0 = m.net.stem.weight, m.ema.stem.weight.clone()
    for _ in range(20):
        m.update_ema(0.9)
    e1 = m.ema.stem.weight
    assert (e1 - w).abs().max() < (e0 - w).abs().max() and not torch.equal(e1, w)
    state = m.state_dict()
    assert torch.equal(state["ema.stem.weight"], e1)
    m2 = _model()
    m2.load_state_dict(state)
    assert torch.equal(m2.ema.stem.weight, e1)


def test_registry_builds_and_lists_the_model():
    m = build_model("ddpm", Spec(1, 10, (28, 28)))
    assert m.num_classes == 10 and m.channels == 1 and m.size == (28, 28)
    rows = {name: (kind, n) for name, kind, _, n in list_models()}
    assert rows["ddpm"] == ("generate", count_params(m))
    assert count_params(build_model("ddpm", Spec(1, 10, (28, 28), width=2))) > count_params(m)
