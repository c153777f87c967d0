"""Both ways of loading the plugin register it exactly once; options and markers are there."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

# pytester restores sys.modules after each in-process run, so whatever a run imports first is
# re-imported -- and assertion-rewritten, ~3 s -- by the next run. Hypothesis' pytest plugin
# imports this in every run's terminal summary: import it once, here.
import hypothesis.internal.observability  # noqa: E402, F401

LOADED_ONCE = """
import pytest_certstore.plugin as plugin

def test_loaded_once(request, cert_metrics, slo_sampler):
    pm = request.config.pluginmanager
    names = [name for name, registered in pm.list_name_plugin() if registered is plugin]
    assert len(names) == 1, names
    assert request.config.getoption("slo_mode") == "enforce"
"""


@pytest.mark.parametrize(
    ("autoload", "args"),
    [
        (True, ()),
        (True, ("-p", "pytest_certstore")),
        (True, ("-p", "no:certstore", "-p", "pytest_certstore")),
        (True, ("-p", "certstore")),
        (True, ("-p", "pytest_certstore.plugin")),
        (False, ("-p", "pytest_certstore")),
        (False, ("-p", "pytest_certstore.plugin")),
    ],
)
def test_each_way_of_loading_registers_once(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    autoload: bool,
    args: tuple[str, ...],
) -> None:
    if not autoload:
        monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(LOADED_ONCE)
    pytester.runpytest(*args).assert_outcomes(passed=1)


def test_without_loading_the_fixtures_are_missing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: the runs above really depend on the loading options."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(LOADED_ONCE)
    result = pytester.runpytest("-p", "no:certstore")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'cert_metrics' not found*"])


def test_a_fresh_process_with_dash_p(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(LOADED_ONCE)
    pytester.runpytest_subprocess("-p", "pytest_certstore").assert_outcomes(passed=1)


def test_help_shows_the_option_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "certstore S3 fixtures, fault injection and SLOs:",
            "*--s3-endpoint=URL*existing S3 endpoint*",
            "*--slo-report=PATH*write every @pytest.mark.slo result*",
            "*--slo-mode={enforce,report}*",
        ]
    )


def test_markers_are_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.slo(*min_samples=10*", "@pytest.mark.s3_live:*"])
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slo(p95_ms=100, min_samples=1)
        def test_slo(slo_sampler):
            slo_sampler.record(1)

        @pytest.mark.s3_live
        def test_live():
            pass
        """
    )
    pytester.runpytest("--strict-markers").assert_outcomes(passed=1, skipped=1)


def test_bad_option_values_are_usage_errors(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--slo-mode=lenient")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--slo-mode*invalid choice*lenient*"])
    result = pytester.runpytest("--s3-endpoint=localhost:9000")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--s3-endpoint 'localhost:9000' is not an http(s) URL*"])


def test_s3_endpoint_option_replaces_the_moto_server(
    pytester: pytest.Pytester, s3_server_url: str
) -> None:
    pytester.makepyfile(
        f"""
        def test_uses_it(s3_server):
            assert s3_server.endpoint_url == {s3_server_url!r}
            s3_server.put("k", b"v")
        """
    )
    pytester.runpytest(f"--s3-endpoint={s3_server_url}").assert_outcomes(passed=1)
