"""The lifecycle policy: its shape, the checks before sending, apply and validate on moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certstore import lifecycle
from certstore.backends import build_client
from certstore.cli import main
from certstore.config import Settings
from certstore.lifecycle import LifecycleError, Transition, build_policy


@pytest.fixture
def calls(http_settings: Settings) -> Iterator[tuple[Any, list[str]]]:
    """A fresh client on the moto server that records every operation it sends."""
    client = build_client(http_settings)
    seen: list[str] = []

    def record(model: Any, **_: Any) -> None:
        seen.append(model.name)

    client.meta.events.register("before-call.s3", record)
    yield client, seen


def test_default_policy_is_the_background_policy_in_the_current_api_shape() -> None:
    """The background package's rule, plus the abort of unfinished multipart uploads."""
    config = build_policy().to_configuration()
    assert config == {
        "Rules": [
            {
                "ID": "CertificateArchival",
                "Status": "Enabled",
                "Filter": {"Prefix": "certificates/"},
                "Transitions": [
                    {"Days": 30, "StorageClass": "STANDARD_IA"},
                    {"Days": 365, "StorageClass": "GLACIER"},
                ],
                "NoncurrentVersionTransitions": [
                    {"NoncurrentDays": 30, "StorageClass": "STANDARD_IA"},
                    {"NoncurrentDays": 365, "StorageClass": "GLACIER"},
                ],
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
            }
        ]
    }
    rule = config["Rules"][0]
    assert "Prefix" not in rule and "Expiration" not in rule
    assert lifecycle.check_policy(build_policy()) == []


def test_the_abort_of_unfinished_uploads_can_be_set_or_left_out() -> None:
    week = build_policy().to_configuration()["Rules"][0]
    assert week["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    two = build_policy(abort_incomplete_days=2).to_configuration()["Rules"][0]
    assert two["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 2}
    without = build_policy(abort_incomplete_days=None)
    assert "AbortIncompleteMultipartUpload" not in without.to_configuration()["Rules"][0]
    assert lifecycle.check_policy(without) == []


@pytest.mark.parametrize("days", [0, -3, 1.5, True])
def test_a_bad_abort_delay_is_refused_with_the_reason(days: Any) -> None:
    with pytest.raises(LifecycleError, match="at least 1") as info:
        lifecycle.check_policy(build_policy(abort_incomplete_days=days))
    assert any("abort incomplete multipart uploads" in p for p in info.value.problems)


def test_a_bucket_with_the_background_policy_lacks_the_abort() -> None:
    """A bucket set up from the background package's JSON (no abort action) is reported, so
    ``lifecycle validate`` tells the operator to apply the policy again."""
    background = build_policy(abort_incomplete_days=None).to_configuration()
    differences = lifecycle.compare_policies(build_policy().to_configuration(), background)
    assert differences == [
        "rule 'CertificateArchival': the bucket has no AbortIncompleteMultipartUpload, "
        'expected {"DaysAfterInitiation": 7}'
    ]
    extra = lifecycle.compare_policies(background, build_policy().to_configuration())
    assert extra == [
        "rule 'CertificateArchival': the bucket has AbortIncompleteMultipartUpload "
        '{"DaysAfterInitiation": 7}, expected none'
    ]


def test_json_is_what_the_aws_cli_takes() -> None:
    text = build_policy("certs").to_json()
    assert json.loads(text)["Rules"][0]["Filter"] == {"Prefix": "certs/"}


def test_noncurrent_defaults_to_the_current_schedule_and_can_differ() -> None:
    custom = build_policy(transitions=[Transition(60, "ONEZONE_IA")])
    assert custom.noncurrent_transitions == (Transition(60, "ONEZONE_IA"),)
    split = build_policy(
        transitions=[Transition(30, "STANDARD_IA")],
        noncurrent_transitions=[Transition(0, "GLACIER")],
    )
    assert split.to_configuration()["Rules"][0]["NoncurrentVersionTransitions"] == [
        {"NoncurrentDays": 0, "StorageClass": "GLACIER"}
    ]


@pytest.mark.parametrize(
    ("transitions", "expected"),
    [
        ([Transition(29, "STANDARD_IA")], "below the provider minimum of 30 days"),
        ([Transition(10, "ONEZONE_IA")], "below the provider minimum of 30 days"),
        ([Transition(30, "STANDARD")], "'STANDARD' is not a lifecycle storage class"),
        ([Transition(30, "GLACIERR")], "'GLACIERR' is not a lifecycle storage class"),
        ([Transition(365, "GLACIER"), Transition(30, "STANDARD_IA")], "not in increasing order"),
        ([Transition(30, "GLACIER"), Transition(400, "STANDARD_IA")], "goes up the storage-class"),
        ([Transition(30, "STANDARD_IA"), Transition(45, "GLACIER")], "must stay 30 days"),
        ([Transition(30, "GLACIER"), Transition(30, "DEEP_ARCHIVE")], "same day"),
        ([Transition(-1, "GLACIER")], "negative"),
    ],
)
def test_bad_policies_are_refused_with_the_reason(
    transitions: list[Transition], expected: str
) -> None:
    policy = build_policy(transitions=transitions)
    with pytest.raises(LifecycleError, match=expected) as info:
        lifecycle.check_policy(policy)
    assert any(expected in problem for problem in info.value.problems)


def test_two_transitions_on_one_day_are_one_problem_in_the_order_given() -> None:
    """They were sorted by class name, so a bogus 'goes up the waterfall' and an 'after 0
    days' fee warning named the classes in the opposite order from the one typed."""
    policy = build_policy(transitions=[Transition(30, "GLACIER"), Transition(30, "DEEP_ARCHIVE")])
    problems, warnings = lifecycle.policy_problems(policy)
    assert [p for p in problems if p.startswith("transitions")] == [
        "transitions: two transitions on the same day"
    ]
    assert warnings == []


def test_glacier_ir_and_intelligent_tiering_may_start_at_day_zero() -> None:
    policy = build_policy(
        transitions=[Transition(0, "INTELLIGENT_TIERING"), Transition(0 + 1, "GLACIER_IR")]
    )
    assert lifecycle.policy_problems(policy)[0] == []


def test_early_exit_from_an_archive_class_is_a_warning_not_an_error() -> None:
    policy = build_policy(transitions=[Transition(0, "GLACIER"), Transition(30, "DEEP_ARCHIVE")])
    warnings = lifecycle.check_policy(policy)
    assert any("billed as 90 days" in w for w in warnings)


def test_transition_parse() -> None:
    assert Transition.parse("30:standard_ia") == Transition(30, "STANDARD_IA")
    for bad in ("30", "x:GLACIER", ":GLACIER", "30:"):
        with pytest.raises(LifecycleError, match="DAYS:STORAGE_CLASS"):
            Transition.parse(bad)


def test_comparison_ignores_order_and_the_prefix_spelling() -> None:
    expected = build_policy().to_configuration()
    rule = expected["Rules"][0]
    reordered = {
        "Rules": [
            {
                "NoncurrentVersionTransitions": list(
                    reversed(rule["NoncurrentVersionTransitions"])
                ),
                "Transitions": list(reversed(rule["Transitions"])),
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
                "Status": "Enabled",
                "Prefix": "certificates/",
                "ID": "CertificateArchival",
            }
        ]
    }
    assert lifecycle.compare_policies(expected, reordered) == []


def test_comparison_lists_each_difference() -> None:
    expected = build_policy().to_configuration()
    actual = json.loads(json.dumps(expected))
    rule = actual["Rules"][0]
    rule["Status"] = "Disabled"
    rule["Filter"] = {"Prefix": "other/"}
    rule["Transitions"] = [
        {"Days": 30, "StorageClass": "STANDARD_IA"},
        {"Days": 180, "StorageClass": "GLACIER"},
    ]
    rule["Expiration"] = {"Days": 3650}
    actual["Rules"].append(
        {
            "ID": "Cleanup",
            "Status": "Enabled",
            "Filter": {"Prefix": "tmp/"},
            "Expiration": {"Days": 1},
        }
    )
    differences = lifecycle.compare_policies(expected, actual)
    text = "\n".join(differences)
    assert "Status is 'Disabled'" in text
    assert "Prefix is 'other/'" in text
    assert "missing GLACIER@365d" in text and "unexpected GLACIER@180d" in text
    assert "Expiration" in text
    assert "extra rule 'Cleanup'" in text
    assert len(differences) == 5
    assert lifecycle.compare_policies(expected, None) == [
        "the bucket has no lifecycle configuration"
    ]
    assert "missing from the bucket" in lifecycle.compare_policies(expected, {"Rules": []})[0]


@pytest.mark.integration
def test_apply_then_validate_on_the_moto_server(
    calls: tuple[Any, list[str]], http_bucket: str
) -> None:
    client, seen = calls
    policy = build_policy()
    absent = lifecycle.validate_bucket(client, http_bucket, policy)
    assert not absent.ok and not absent.present
    lifecycle.apply_policy(client, http_bucket, policy)
    assert "PutBucketLifecycleConfiguration" in seen
    result = lifecycle.validate_bucket(client, http_bucket, policy)
    assert result.ok, result.differences
    other = build_policy(transitions=[Transition(30, "STANDARD_IA"), Transition(90, "GLACIER")])
    assert lifecycle.validate_bucket(client, http_bucket, other).differences


@pytest.mark.integration
def test_a_bad_policy_is_never_sent(calls: tuple[Any, list[str]], http_bucket: str) -> None:
    client, seen = calls
    bad = build_policy(transitions=[Transition(5, "STANDARD_IA")])
    with pytest.raises(LifecycleError, match="provider minimum"):
        lifecycle.apply_policy(client, http_bucket, bad)
    assert "PutBucketLifecycleConfiguration" not in seen
    assert lifecycle.read_configuration(client, http_bucket) is None


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, moto_endpoint: str, http_bucket: str) -> str:
    monkeypatch.setenv("AWS_S3_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_STORAGE_BUCKET_NAME", http_bucket)
    return http_bucket


@pytest.mark.integration
def test_cli_show_apply_validate(
    cli_env: str, http_client: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "lifecycle.json"
    assert main(["lifecycle", "show", "-o", str(out)]) == 0
    assert json.loads(out.read_text())["Rules"][0]["ID"] == "CertificateArchival"
    assert main(["lifecycle", "validate"]) == 1
    assert "no lifecycle configuration" in capsys.readouterr().out
    assert main(["lifecycle", "apply"]) == 0
    assert "matches" in capsys.readouterr().out
    assert main(["lifecycle", "validate", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert report["actual"]["Rules"][0]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 7
    }
    # a policy without the abort is a different policy
    assert main(["lifecycle", "validate", "--abort-incomplete-days", "0"]) == 1
    assert "AbortIncompleteMultipartUpload" in capsys.readouterr().out
    # the bucket drifts: someone shortened the archive transition by hand
    drifted = build_policy(transitions=[Transition(30, "STANDARD_IA"), Transition(200, "GLACIER")])
    http_client.put_bucket_lifecycle_configuration(
        Bucket=cli_env, LifecycleConfiguration=drifted.to_configuration()
    )
    assert main(["lifecycle", "validate"]) == 1
    text = capsys.readouterr().out
    assert "DIFFERENT" in text and "GLACIER@200d" in text


@pytest.mark.integration
def test_cli_refuses_a_bad_policy_and_sends_nothing(
    cli_env: str, http_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["lifecycle", "apply", "--transition", "7:STANDARD_IA"])
    assert code == 2
    err = capsys.readouterr().err
    assert "nothing sent" in err and "STANDARD_IA at 7 days" in err
    assert lifecycle.read_configuration(http_client, cli_env) is None
    assert main(["lifecycle", "show", "--transition", "soon:GLACIER"]) == 2
    assert main(["lifecycle", "apply", "--abort-incomplete-days", "-1"]) == 2
    assert "--abort-incomplete-days" in capsys.readouterr().err
    assert lifecycle.read_configuration(http_client, cli_env) is None


def test_cli_show_sets_or_leaves_out_the_abort(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "lifecycle.json"
    assert main(["lifecycle", "show", "-o", str(out), "--abort-incomplete-days", "3"]) == 0
    rule = json.loads(out.read_text())["Rules"][0]
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 3}
    assert main(["lifecycle", "show", "-o", str(out), "--abort-incomplete-days", "0"]) == 0
    assert "AbortIncompleteMultipartUpload" not in json.loads(out.read_text())["Rules"][0]


def test_cli_show_to_a_folder_or_a_missing_one_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lifecycle", "show", "-o", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert main(["lifecycle", "show", "-o", str(tmp_path / "no" / "p.json")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_cli_without_a_bucket_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lifecycle", "validate"]) == 2
    assert "AWS_STORAGE_BUCKET_NAME" in capsys.readouterr().err
