"""Bad options of the experiment scripts: `main([...])` with data loading and training stubbed.


A case table (``case(area, name, call, expect, mentions, check)``) judged by
``bad_input_support.classify``.
"""

import pathlib

import pytest
from bad_input_support import (
    TMP,
    CaseTable,
    assert_refused_or_handled,
    isolated_cache,  # noqa: F401 - the fixture, used by pytestmark
    run_script,
)

T = CaseTable()
case = T.add
pytestmark = pytest.mark.usefixtures("isolated_cache")


# ----------------------------------------------------------------------------- cases: scripts
SCRIPT_OPTIONS = {  # script -> its own numeric options (tried with bad values)
    "adversarial_examples": ("--eps", "--n-images"),
    "clean_accuracy": ("--n-test",),
    "gradient_maps": ("--n-classes", "--offset"),
    "gradient_norms": (),
    "insensitive_variants": (),
    "jsma_grids": ("--theta", "--gamma", "--n-classes", "--batch-size"),
    "lambda_sweep": ("--points",),
    "logprob_histograms": ("--bins",),
    "tgsm_grids": ("--eps", "--steps", "--n-per-class"),
    "train_models": (),
    "training_curves": ("--max-batch",),
    "transfer": ("--n-examples",),
    "venn_overlaps": ("--eps", "--n-examples"),
}
BAD_NUMBERS = {
    "--eps": ("-1", "nan", "inf"),
    "--n-images": ("0", "-3"),
    "--n-test": ("0", "x"),
    "--n-classes": ("0",),
    "--offset": ("-1",),
    "--theta": ("nan",),
    "--gamma": ("0", "2"),
    "--batch-size": ("0",),
    "--points": ("0",),
    "--bins": ("0",),
    "--steps": ("0",),
    "--n-per-class": ("0",),
    "--max-batch": ("0",),
    "--n-examples": ("0", "-5", "x"),
}


def add_script_cases(tmp: pathlib.Path):
    a_file = tmp / "out_file"
    a_file.write_text("x")
    common = {
        "--batches": ("0", "-5", "abc"),
        "--seed": ("-1",),
        "--dataset": ("cifar",),
        "--budget": ("huge",),
        "--strategy": ("bogus",),
        "--out": (str(a_file), "/proc/version/x"),
        "--cache-dir": (str(a_file),),
        "--data-dir": (str(tmp / "missing"),),
    }
    specific = {
        "transfer": {"--attacks": ("pgd",), "--epsilons": ("a,b", "-1", "nan")},
        "venn_overlaps": {"--attacks": ("pgd",)},
        "lambda_sweep": {"--kinds": ("bogus",)},
        "train_models": {"--models": ("bogus",)},
    }
    for script, own in SCRIPT_OPTIONS.items():
        options = dict(common)
        options.update({o: BAD_NUMBERS[o] for o in own})
        options.update(specific.get(script, {}))
        for option, values in options.items():
            if script in ("train_models",) and option == "--out":
                values = values[:1]
            for value in values:
                argv = [option, value] + ([] if option == "--out" else ["--out", str(tmp / "o")])
                mention = value
                case(
                    f"script {script}",
                    f"{option} {value}",
                    lambda s=script, v=argv: run_script(s, v),
                    mentions=(mention, option),
                )
        case(
            f"script {script}",
            "valid options reach the work",
            lambda s=script: run_script(s, ["--batches", "1", "--out", str(tmp / "o")]),
            expect="ok",
            check=lambda r: r == "work started",
        )


add_script_cases(TMP)


@pytest.mark.parametrize("c", T.params())
def test_scripts(c):
    """Refused clearly or handled correctly; fails on a silent, unclear or late outcome."""
    assert_refused_or_handled(c)
