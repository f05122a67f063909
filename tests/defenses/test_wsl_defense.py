"""A weakly supervised histology classifier (WILDCAT head on a small ResNet) goes through the same
adversarial training and robustness evaluation as the small reference networks."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from advwsl.data.synthetic import SyntheticHistology
from advwsl.defenses import adversarial_train, ddn_training
from advwsl.evaluation.robustness import evaluate_robustness
from advwsl.models import create_model


def test_wildcat_adversarial_training_and_evaluation_on_synthetic_histology():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        train = SyntheticHistology("train", n=48, size=32)
        test = SyntheticHistology("test", n=12, size=32)
        model = create_model("wildcat", num_classes=2, backbone="resnet-mini", stride=8)
        hook = ddn_training(1.0, steps=5)
        history = adversarial_train(model, DataLoader(train, batch_size=16, shuffle=True),
                                    torch.optim.SGD(model.parameters(), lr=0.01), perturbation=hook, epochs=1)
        assert model.training and all(p.requires_grad for p in model.parameters())
        assert history[0]["adv_samples"] == 48 and 0 < history[0]["adv_l2_max"] <= 1.0 + 1e-5
        x = torch.stack([test[i]["image"] for i in range(len(test))])
        y = torch.tensor([test[i]["label"] for i in range(len(test))])
        report = evaluate_robustness(model.eval(), x, y, epsilon=0.5, attacks=("ddn", "deepfool"),
                                     budgets={"ddn": {"steps": 20}, "deepfool": {"steps": 5}}, batch_size=6,
                                     checks=False, progress=False, model_name="wildcat")
        table = report.table().set_index("attack")
        assert list(table.index) == ["DDN", "DeepFool", "All"]
        assert table.loc["All", "success"] == 1.0
        assert (report.results["All"].norms <= report.results["ddn"].norms).all()
        # the CAMs stay available on the evaluated model (attacking them is the CAM-robustness module's job)
        logits, cams = model.cams(x[:2])
        assert cams.shape[:2] == (2, 2)
    finally:
        torch.set_num_threads(threads)
