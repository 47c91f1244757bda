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
    """The meta-gradient through one inner step equals a finite difference of the post-step loss (float64), and
    differs from the first-order gradient, which ignores the step's dependence on the weights."""
    torch.manual_seed(0)
    net = SRNet(channels=4, depth=2).double()
    params = dict(net.named_parameters())
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64)

    def after_step(p, create_graph):
        grads = torch.autograd.grad(functional_forward(net, p, x).abs().mean(), list(p.values()),
                                    create_graph=create_graph)
        fast = {k: w - 0.1 * g for (k, w), g in zip(p.items(), grads)}
        return functional_forward(net, fast, x).abs().mean()

    second = torch.autograd.grad(after_step(params, True), list(params.values()))
    first = torch.autograd.grad(after_step(params, False), list(params.values()))
    direction = {k: torch.randn_like(v) for k, v in params.items()}
    eps = 1e-6
    with torch.no_grad():
        plus = {k: v + eps * direction[k] for k, v in params.items()}
        minus = {k: v - eps * direction[k] for k, v in params.items()}
    numeric = (after_step({k: v.requires_grad_() for k, v in plus.items()}, False)
               - after_step({k: v.requires_grad_() for k, v in minus.items()}, False)).item() / (2 * eps)
    analytic = sum((g * direction[k]).sum() for g, k in zip(second, params)).item()
    first_order = sum((g * direction[k]).sum() for g, k in zip(first, params)).item()
    assert abs(analytic - numeric) < 1e-5 * max(1.0, abs(numeric))
    assert abs(first_order - numeric) > 100 * abs(analytic - numeric)
