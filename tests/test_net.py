import torch

from mzsr.net import SRNet, functional_forward, param_count


def test_parameter_counts():
    assert param_count(SRNet()) == 225_091
    assert param_count(SRNet(bias=False)) == 225_091 - (7 * 64 + 3)


def test_functional_forward_equals_module_and_is_residual():
    net = SRNet(channels=8, depth=3)
    x = torch.rand(2, 3, 10, 12)
    params = dict(net.named_parameters())
    assert torch.allclose(functional_forward(net, params, x), net(x))
    zero = {k: torch.zeros_like(v) for k, v in params.items()}
    assert torch.equal(functional_forward(net, zero, x), x)


def test_gradients_flow_through_updated_weights():
    net = SRNet(channels=4, depth=2)
    params = dict(net.named_parameters())
    x = torch.rand(1, 3, 8, 8)
    loss = functional_forward(net, params, x).abs().mean()
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
    fast = {k: w - 0.1 * g for (k, w), g in zip(params.items(), grads)}
    second = torch.autograd.grad(functional_forward(net, fast, x).abs().mean(), list(params.values()))
    assert all(g is not None for g in second)
