"""Benchmark of verde.distill on scikit-learn's digits: detection, re-classification, cost.

Trains the CNN service, distils the verifier (an ensemble of MLP students, each by greedy
layer-wise distillation after Fides, Kumar et al., ASIA CCS 2024, on the client's digits plus a
transfer set generated in code and labelled by the service), calibrates four detectors at 1%
false positives on clean data (the deployed one, by default the combined cross-entropy/label-
surprise statistic; Fides' cross-entropy; the verifier's surprise at the served label; the
GAN-trained learned detector), then runs every attack on the held-out test split. Per attack it
reports the detection rate (flagged fraction of label-changed answers) for each detector, the same
for the deployed detector at exactly 1% of clean *test* answers flagged (ROC-style) and among the
answers the attack made wrong, the flagged fraction of all answers, and the re-classification
accuracy on flagged label-changed answers (against the true labels). The verifier's cost is its
FLOPs (Linear/Conv, from shapes) over the service's, with the measured wall-clock ratio of the two
forward passes alongside. It also counts how many requests the CUSUM monitor needs to catch
cheating on 5% of requests and checks that escalation returns the honest answers. A table goes to
stderr, one JSON line to stdout. Seeded; a few minutes on 2 CPU cores (more when they are shared).

    .venv/bin/python bench/distill_bench.py [--seed 0] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import torch

from verde.distill.attacks import Attack, FractionalAttack
from verde.distill.detector import DivergenceDetector
from verde.distill.digits import DigitsSetup, digits_attacks, prepare_digits
from verde.distill.distillation import DistillConfig
from verde.distill.escalation import ReplayReferee, TrustedReplica
from verde.distill.evaluation import evaluate_attack, stream_until_alarm
from verde.distill.flops import forward_flops
from verde.distill.guard import VerifiedInference
from verde.distill.models import predict_probs
from verde.distill.monitor import CusumMonitor

FPR = 0.01
CHEAT_FRACTION = 0.05
TARGETS = {"detection": 0.98, "reclassification": 0.94, "cost": 0.10}


def _wall(fn: object, x: torch.Tensor, repeats: int = 20) -> float:
    with torch.no_grad():
        fn(x)  # type: ignore[operator]
        start = time.perf_counter()
        for _ in range(repeats):
            fn(x)  # type: ignore[operator]
    return (time.perf_counter() - start) / repeats


def _detection_at_test_fpr(setup: DigitsSetup, attack: Attack, seed: int) -> float:
    """ROC-style detection: threshold at the clean *test* scores' 1% tail (no calibration gap).

    The deployed detector uses the conformal threshold from the calibration split, which is
    conservative by design; this column shows the same statistic at exactly 1% of clean test
    requests flagged, as papers usually report "detection at 1% FPR".
    """
    test = setup.splits.test
    requests = attack.requests(test.x)
    honest = predict_probs(setup.service, requests)
    verifier = setup.verifier.probs(requests)
    served = attack.serve(requests, honest, torch.Generator().manual_seed(seed))
    clean = setup.detector.scores(
        predict_probs(setup.service, test.x),
        setup.verifier.probs(test.x),
    )
    allowed = int(FPR * clean.numel())
    threshold = clean.sort(descending=True).values[allowed]
    changed = served.argmax(1) != honest.argmax(1)
    if not changed.any():
        return math.nan
    scores = setup.detector.scores(served, verifier)
    return float((scores[changed] > threshold).float().mean())


def _statistic_name(setup: DigitsSetup) -> str:
    statistic = setup.detector.statistic
    if isinstance(statistic, str):
        return statistic
    return "combined(" + "+".join(getattr(statistic, "statistics", ("custom",))) + ")"


def _r(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (1: fair on shared CPUs)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    setup = prepare_digits(seed=args.seed, fpr=FPR)
    prepared = time.perf_counter() - started
    print(f"set-up (train, distil, calibrate) took {prepared:.1f} s", file=sys.stderr)
    test = setup.splits.test
    service_probs = predict_probs(setup.service, test.x)
    verifier_probs = setup.verifier.probs(test.x)
    clean_fpr = float(setup.detector.flags(service_probs, verifier_probs).float().mean())
    clean_fpr_learned = float(
        setup.learned_detector.flags(service_probs, verifier_probs).float().mean()
    )
    bound = setup.detector.held_out_bound(len(test)) / len(test)

    surprise = DivergenceDetector("label_surprise").calibrate(
        predict_probs(setup.service, setup.splits.calib.x),
        setup.verifier.probs(setup.splits.calib.x),
        FPR,
    )
    attacks = digits_attacks(setup, seed=args.seed)
    rows = {}
    for attack in attacks:
        common = dict(
            service=setup.service,
            verifier=setup.verifier,
            reclassifier=setup.reclassifier,
            x=test.x,
            y=test.y,
            seed=args.seed,
        )
        ce = evaluate_attack(attack, detector=setup.detector, **common)
        fides = evaluate_attack(attack, detector=setup.cross_entropy_detector, **common)
        roc = _detection_at_test_fpr(setup, attack, args.seed)
        learned = evaluate_attack(attack, detector=setup.learned_detector, **common)
        label = evaluate_attack(attack, detector=surprise, **common)
        rows[attack.name] = {
            "label_changing": attack.label_changing,
            "changed_fraction": round(ce.changed / ce.requests, 4),
            "detection_rate": _r(ce.detection_rate),
            "detection_rate_harmful": _r(ce.harmful_detection_rate),
            "flag_rate": _r(ce.flag_rate),
            "reclassification_accuracy": _r(ce.reclassification_accuracy),
            "detection_rate_cross_entropy": _r(fides.detection_rate),
            "detection_rate_learned": _r(learned.detection_rate),
            "detection_rate_label_surprise": _r(label.detection_rate),
            "detection_rate_roc_1pct": _r(roc),
            "flag_rate_learned": _r(learned.flag_rate),
        }

    # The monitor assumes the detector's 95% upper bound on its clean flag rate (not the nominal
    # 1%), so a calibration draw that landed high does not raise false alarms.
    monitor_rows = {}
    for attack in attacks[:3]:
        monitor = CusumMonitor.for_detector(setup.detector, CHEAT_FRACTION, arl0=10_000)
        monitor_rows[attack.name] = stream_until_alarm(
            monitor,
            FractionalAttack(attack, CHEAT_FRACTION),
            service=setup.service,
            verifier=setup.verifier,
            detector=setup.detector,
            x=test.x,
            seed=args.seed,
        )
    clean_monitor = CusumMonitor.for_detector(setup.detector, CHEAT_FRACTION, arl0=10_000)
    clean_alarm = stream_until_alarm(
        clean_monitor,
        None,
        service=setup.service,
        verifier=setup.verifier,
        detector=setup.detector,
        x=test.x,
        max_requests=5000,
        seed=args.seed,
    )

    # Escalation: a provider swapping the top two classes on every answer; flagged answers go
    # to a trusted replica and the in-process referee.
    guard = VerifiedInference(
        setup.verifier,
        setup.detector,
        reclassifier=setup.reclassifier,
        second_opinion=TrustedReplica(setup.service),
        dispute=ReplayReferee(setup.service),
    )
    cheating = attacks[0].serve(test.x, service_probs, torch.Generator().manual_seed(args.seed))
    checked = guard.check(test.x, cheating)
    honest_labels = service_probs.argmax(1)
    honest_answers = float((checked.estimates == honest_labels).float().mean())
    flagged = checked.flags
    honest_on_flagged = float((checked.estimates[flagged] == honest_labels[flagged]).float().mean())

    service_flops = forward_flops(setup.service, test.x[:1])
    verifier_flops = forward_flops(setup.verifier.model, test.x[:1])
    wall_ratio = _wall(setup.verifier.model, test.x) / _wall(setup.service, test.x)
    # Why detection has a ceiling: a top-2 swap on an input where the verifier already prefers
    # the service's runner-up serves the verifier's own label, and clean disagreements on the
    # calibration split (if more than the 1% target) set the threshold among themselves.
    runner_up = service_probs.topk(2, dim=1).indices[:, 1]
    swap_ceiling = 1.0 - float((verifier_probs.argmax(1) == runner_up).float().mean())
    calib_agreement = float(
        (
            setup.verifier.predict(setup.splits.calib.x)
            == predict_probs(setup.service, setup.splits.calib.x).argmax(1)
        )
        .float()
        .mean()
    )
    defaults = DistillConfig()
    label_rows = [r for r in rows.values() if r["label_changing"]]
    worst_detection = min(r["detection_rate"] or 0.0 for r in label_rows)
    worst_reclass = min(r["reclassification_accuracy"] or 0.0 for r in label_rows)
    result = {
        "bench": "distill",
        "dataset": "sklearn digits",
        "seed": args.seed,
        "fpr_target": FPR,
        "clean_fpr_test": round(clean_fpr, 4),
        "clean_fpr_test_learned": round(clean_fpr_learned, 4),
        "clean_fpr_bound_99.9": round(bound, 4),
        "service_accuracy": round(float((service_probs.argmax(1) == test.y).float().mean()), 4),
        "verifier_agreement": round(
            float((verifier_probs.argmax(1) == service_probs.argmax(1)).float().mean()), 4
        ),
        "verifier_agreement_calib": round(calib_agreement, 4),
        "top2_swap_label_ceiling": round(swap_ceiling, 4),
        "detector_statistic": _statistic_name(setup),
        "ensemble_size": max(1, len(setup.verifier.members)),
        "transfer_set": list(defaults.transfer),
        "transfer_copies": defaults.augment_copies,
        "validation_copies": defaults.val_copies,
        "service_flops": service_flops,
        "verifier_flops": verifier_flops,
        "verifier_cost_fraction": round(verifier_flops / service_flops, 5),
        "verifier_wall_fraction": round(wall_ratio, 4),
        "reclassifier": setup.reclassifier.name,
        "reclassifier_val_accuracy": {k: round(v, 4) for k, v in setup.reclassifier_scores.items()},
        "attacks": rows,
        "monitor_cheat_fraction": CHEAT_FRACTION,
        "monitor_null_rate": round(clean_monitor.null_rate, 5),
        "monitor_requests_to_alarm": monitor_rows,
        "monitor_clean_alarm_within_5000": clean_alarm,
        "escalation_honest_answer_rate_flagged": round(honest_on_flagged, 4),
        "escalation_honest_answer_rate_all": round(honest_answers, 4),
        "targets": TARGETS,
        "targets_met": {
            "detection": worst_detection >= TARGETS["detection"],
            "reclassification": worst_reclass >= TARGETS["reclassification"],
            "cost": verifier_flops / service_flops <= TARGETS["cost"],
        },
        "n_test": len(test),
        "n_calibration": len(setup.splits.calib),
        "setup_seconds": round(prepared, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }

    err = sys.stderr
    print(
        f"service acc {result['service_accuracy']:.4f}  verifier agreement "
        f"{result['verifier_agreement']:.4f} (calib {calib_agreement:.4f}, swap label ceiling "
        f"{swap_ceiling:.4f})  cost {result['verifier_cost_fraction']:.4%} "
        f"(FLOPs {verifier_flops}/{service_flops}; wall {wall_ratio:.2%})",
        file=err,
    )
    print(
        f"clean FPR on test: {result['detector_statistic']} {clean_fpr:.4f}, learned "
        f"{clean_fpr_learned:.4f} "
        f"(target {FPR}, 99.9% bound {bound:.4f}); re-classifier: {setup.reclassifier.name}",
        file=err,
    )
    header = (
        f"{'attack':<22}{'changed':>8}{'det':>8}{'det CE':>8}{'det GAN':>8}{'det LS':>8}"
        f"{'roc':>8}{'harm':>8}{'flag':>8}{'reclass':>8}"
    )
    print(header, file=err)
    for name, r in rows.items():
        cells = [
            r["changed_fraction"],
            r["detection_rate"],
            r["detection_rate_cross_entropy"],
            r["detection_rate_learned"],
            r["detection_rate_label_surprise"],
            r["detection_rate_roc_1pct"],
            r["detection_rate_harmful"],
            r["flag_rate"],
            r["reclassification_accuracy"],
        ]
        text = "".join(f"{'-' if c is None else f'{c:.4f}':>8}" for c in cells)
        print(f"{name:<22}{text}", file=err)
    print(
        f"CUSUM at p={CHEAT_FRACTION}: requests to alarm {monitor_rows}; clean stream alarm: "
        f"{clean_alarm}; escalation (top-2 swap on every answer): honest answers on flagged "
        f"{honest_on_flagged:.4f}, on all {honest_answers:.4f}",
        file=err,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
