"""ResNet-50 v1.5 structure and init; LARS against the update formula; both schedules at
chosen steps; the hparams vocabularies of each ruleset."""
import math
from pathlib import Path

import pytest
import torch
import torchvision
import yaml

from references.resnet.model import ResNet, parameter_kinds, tf_same_max_pool
from references.resnet.optim import LARS, PolySchedule, StepSchedule, recipe_from_hparams

ROOT = Path(__file__).resolve().parents[1]


def test_resnet50_has_torchvision_v15_shapes():
    with torch.device("meta"):  # shapes only: skips 25M random draws
        ours = ResNet(num_outputs=1000)
        theirs = torchvision.models.resnet50(num_classes=1000)
    assert sorted(p.shape for p in ours.parameters()) == sorted(p.shape for p in theirs.parameters())
    assert sum(p.numel() for p in ours.parameters()) == 25_557_032
    strides = [m.stride for m in ours.layers[3].modules() if isinstance(m, torch.nn.Conv2d)]
    assert strides == [(1, 1), (2, 2), (1, 1), (2, 2)]   # v1.5: the 3x3 and the shortcut stride


def test_init_is_tf_variance_scaling_and_plain_batch_norm():
    torch.manual_seed(0)
    model = ResNet(num_outputs=1001, blocks=(1, 1, 1, 1))
    conv = model.layers[0].conv2                          # 3x3, 64 -> 64: fan_in 576
    std = math.sqrt(1 / 576) / 0.87962566103423978
    assert conv.weight.abs().max() <= 2 * std + 1e-6
    assert abs(conv.weight.std().item() - math.sqrt(1 / 576)) < 0.05 * math.sqrt(1 / 576)
    assert abs(model.fc.weight.std().item() - 0.01) < 0.001 and not model.fc.bias.any()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(bn.weight.eq(1).all() and not bn.bias.any() for bn in bns)          # no zero-gamma
    assert all(bn.momentum == 0.1 and bn.eps == 1e-5 for bn in bns)
    kinds = parameter_kinds(model)
    assert kinds["biases"] == [model.fc.bias] and len(kinds["batch_norm"]) == 2 * len(bns)


def test_max_pool_pads_like_tf_same():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    # SAME on 4 px, kernel 3, stride 2: 0 before, 1 after -> windows start at 0 and 2
    assert tf_same_max_pool(x).flatten().tolist() == [10.0, 11.0, 14.0, 15.0]
    assert tf_same_max_pool(torch.zeros(1, 1, 112, 112)).shape[-1] == 56
    small = ResNet(num_outputs=11, blocks=(1, 1, 1, 1), width=4)
    assert small(torch.zeros(2, 3, 64, 64)).shape == (2, 11)


def test_lars_follows_the_update_formula():
    torch.manual_seed(0)
    weight, bias = torch.randn(4, 3, requires_grad=True), torch.randn(4, requires_grad=True)
    zero = torch.zeros(3, requires_grad=True)               # ‖w‖ = 0 at first: trust ratio 1
    momentum, wd, eta = 0.9, 1e-4, 0.001
    opt = LARS([{"params": [weight, zero], "trust": True, "weight_decay": wd},
                {"params": [bias], "trust": False, "weight_decay": 0.0}], momentum=momentum, eta=eta)
    w, b, z = weight.detach().clone(), bias.detach().clone(), zero.detach().clone()
    vw, vb, vz = torch.zeros_like(w), torch.zeros_like(b), torch.zeros_like(z)

    def trust(w, g):  # eta·‖w‖ / (‖g‖ + wd·‖w‖ + eps), 1 where a norm is 0
        return eta * w.norm() / (g.norm() + wd * w.norm() + 0.0) if w.norm() > 0 and g.norm() > 0 else 1.0

    for lr in (0.5, 2.0, 1.0):                              # the rate changes between steps
        for group in opt.param_groups:
            group["lr"] = lr
        grads = [torch.randn(4, 3), torch.randn(4), torch.randn(3)]
        weight.grad, bias.grad, zero.grad = grads
        opt.step()
        vw = momentum * vw + lr * trust(w, grads[0]) * (grads[0] + wd * w)
        w = w - vw
        vb = momentum * vb + lr * grads[1]
        b = b - vb
        vz = momentum * vz + lr * trust(z, grads[2]) * (grads[2] + wd * z)
        z = z - vz
        assert torch.allclose(weight, w, atol=1e-6) and torch.allclose(bias, b, atol=1e-6)
        assert torch.allclose(zero, z, atol=1e-6)


def test_sgd_decays_weights_and_fc_bias_not_batch_norm():
    model = ResNet(num_outputs=5, blocks=(1, 1, 1, 1), width=4)
    recipe = recipe_from_hparams({"opt_name": "sgd", "sgd_opt_base_learning_rate": 0.1,
                                  "sgd_opt_learning_rate_decay_steps": 10, "sgd_opt_weight_decay": 2e-4})
    opt = recipe.build_optimizer(model)
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 2e-4 and plain["weight_decay"] == 0.0
    assert any(p is model.fc.bias for p in decayed["params"]) and decayed["momentum"] == 0.9
    num_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert all(p is not model.fc.bias for p in plain["params"]) and len(plain["params"]) == 2 * num_bn == 34


def test_poly_schedule_values():
    schedule = PolySchedule(peak_lr=2.0, warmup_steps=10, decay_end_step=100, end_lr=1e-4, power=2)
    assert schedule(0) == 0.0 and schedule(5) == 1.0 and schedule(10) == 2.0
    d = 100 - 10 + 1
    assert schedule(11) == pytest.approx((2.0 - 1e-4) * (1 - 1 / d) ** 2 + 1e-4)
    assert schedule(60) == pytest.approx((2.0 - 1e-4) * (1 - 50 / d) ** 2 + 1e-4)
    assert schedule(101) == pytest.approx(1e-4) and schedule(500) == pytest.approx(1e-4)
    assert PolySchedule(1.0, 0, 10)(0) == pytest.approx((1 - 1e-4) * (1 - 1 / 11) ** 2 + 1e-4)


def test_v05_step_schedule_at_the_reference_boundaries():
    recipe = recipe_from_hparams({"opt_name": "sgd", "opt_base_learning_rate": 0.128,
                                  "opt_learning_rate_warmup_epochs": 5})
    schedule = recipe.schedule_for(1_281_167, 256)            # 5004.56 batches per epoch
    assert isinstance(schedule, StepSchedule) and schedule.warmup_steps == 25022
    assert schedule.boundary_steps == (150136, 300273, 400364, 450410)
    assert schedule(0) == 0.0 and schedule(12511) == pytest.approx(0.064)
    assert schedule(25022) == schedule(150136) == 0.128          # a boundary keeps the old value
    assert schedule(150137) == pytest.approx(0.0128)
    assert schedule(400365) == pytest.approx(0.128e-3) and schedule(10**7) == pytest.approx(0.128e-4)


def test_reference_presets_read_into_recipes():
    v07 = yaml.safe_load((ROOT / "hparams/resnet/reference.yaml").read_text())["hparams"]
    recipe = recipe_from_hparams(v07)
    assert (recipe.optimizer, recipe.schedule, recipe.base_lr, recipe.decay_epochs) == ("lars", "poly", 5.0, 90)
    schedule = recipe.schedule_for(1_281_167, 1024)
    assert schedule.warmup_steps == int(5 * 1_281_167 / 1024) and schedule(schedule.warmup_steps) == 5.0
    v05 = yaml.safe_load((ROOT / "hparams/resnet/0.5.0/reference.yaml").read_text())["hparams"]
    assert recipe_from_hparams(v05).schedule == "step"
    with pytest.raises(ValueError, match="sgd_opt_learning_rate_decay_steps"):
        recipe_from_hparams({"opt_name": "sgd", "sgd_opt_base_learning_rate": 0.1})
