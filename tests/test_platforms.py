"""Claude on Amazon Bedrock and Google Vertex AI: models.provider, model ids, prices, batch mode, and the
simulator speaking each platform's wire format to the SDK's own AsyncAnthropicBedrock/AsyncAnthropicVertex."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from evalkit.backends import Backend, connect, platform_model_ids, run_mode
from evalkit.cli import main
from evalkit.config import load_settings
from evalkit.cost.prices import call_cost, platform_pricing
from evalkit.errors import AuthError, ConfigError, ModelNotFoundError, SpecError, UsageError
from evalkit.prompts.render import ModelRequest
from evalkit.providers.anthropic import PLATFORM_VERSIONS, AnthropicProvider, make_platform_client
from evalkit.providers.base import Usage
from evalkit.sim.app import Ledger
from evalkit.spec import load_task
from tests.conftest import serve_simulator

#: Everything that would let a test reach real AWS or Google Cloud, or change where the SDK goes.
PLATFORM_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_BEARER_TOKEN_BEDROCK",
                "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "ANTHROPIC_BEDROCK_BASE_URL",
                "ANTHROPIC_VERTEX_BASE_URL", "ANTHROPIC_VERTEX_PROJECT_ID", "CLOUD_ML_REGION",
                "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "EVALKIT_VERTEX_ACCESS_TOKEN")


@pytest.fixture(autouse=True)
def _no_cloud(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in PLATFORM_ENV:
        monkeypatch.delenv(var, raising=False)
    # No ~/.aws or gcloud files, no instance metadata: the credential chains find nothing real.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))


def _task(project: Path, provider: str, extra: str = "") -> Path:
    """The demo task (tasks/triage.yaml) with ``models.provider`` set."""
    text = (project / "tasks" / "triage.yaml").read_text()
    assert "\nmodels:\n" in text
    path = project / "tasks" / f"triage_{provider}.yaml"
    path.write_text(text.replace("\nmodels:\n", f"\nmodels:\n  provider: {provider}\n{extra}"))
    return path


def _settings_with(project: Path, toml: str) -> Any:
    with (project / "evalkit.toml").open("a") as handle:
        handle.write("\n" + toml)
    return load_settings(project)


# -- the task spec -----------------------------------------------------------------------------------

def test_models_provider_defaults_to_anthropic_and_reads_bedrock_and_vertex(project: Path) -> None:
    assert load_task(project / "tasks" / "triage.yaml").models.platform == "anthropic"
    assert load_task(_task(project, "bedrock")).models.platform == "bedrock"
    assert load_task(_task(project, "vertex")).models.platform == "vertex"


def test_a_per_model_provider_must_agree_with_the_others(project: Path) -> None:
    path = _task(project, "bedrock")
    text = path.read_text().replace("  reference: claude-sonnet-5-5\n",
                                    "  reference: {model: claude-sonnet-5-5, provider: vertex}\n")
    path.write_text(text)
    with pytest.raises(SpecError, match="different providers"):
        load_task(path)
    path.write_text(text.replace("provider: vertex}", "provider: bedrock}"))
    assert load_task(path).models.platform == "bedrock"


def test_an_unknown_provider_is_a_spec_error(project: Path) -> None:
    with pytest.raises(SpecError, match="provider"):
        load_task(_task(project, "azure"))


# -- model ids ---------------------------------------------------------------------------------------

def test_model_ids_map_to_each_platform_with_the_inference_profile(project: Path) -> None:
    settings = load_settings(project)
    bedrock = platform_model_ids(settings, "bedrock")
    assert bedrock["claude-haiku-5-5"] == "global.anthropic.claude-haiku-5-5"
    assert bedrock["claude-haiku-4-5"] == "global.anthropic.claude-haiku-4-5-20251001-v1:0"
    vertex = platform_model_ids(settings, "vertex")
    assert vertex["claude-haiku-4-5"] == "claude-haiku-4-5@20251001"
    assert vertex["claude-sonnet-5-5"] == "claude-sonnet-5-5"


def test_model_ids_and_profile_are_overridable_in_evalkit_toml(project: Path) -> None:
    settings = _settings_with(project, '[bedrock]\ninference_profile = "eu"\n[bedrock.models]\n'
                                       '"claude-haiku-5-5" = "arn:aws:bedrock:eu-west-1:1:application-'
                                       'inference-profile/abc"\n[vertex.models]\n'
                                       '"claude-example-1" = "claude-example-1@20270101"\n')
    bedrock = platform_model_ids(settings, "bedrock")
    assert bedrock["claude-haiku-5-5"].startswith("arn:aws:bedrock:")  # an ARN is used as written
    assert bedrock["claude-sonnet-5-5"] == "eu.anthropic.claude-sonnet-5-5"
    assert platform_model_ids(settings, "vertex")["claude-example-1"] == "claude-example-1@20270101"
    settings = _settings_with(project, "")
    none = settings.model_copy(update={"bedrock": settings.bedrock.model_copy(
        update={"inference_profile": "none"})})
    assert platform_model_ids(none, "bedrock")["claude-sonnet-5-5"] == "anthropic.claude-sonnet-5-5"


def test_an_unmapped_model_is_an_error_that_says_where_to_map_it() -> None:
    provider = AnthropicProvider(connect=lambda: None, endpoint="bedrock:test",  # type: ignore[arg-type,return-value]
                                 platform="bedrock", model_ids={"claude-haiku-5-5": "x"})
    with pytest.raises(ModelNotFoundError) as caught:
        provider.platform_model("claude-example-9")
    assert "[bedrock.models]" in (caught.value.hint or "")


# -- prices ------------------------------------------------------------------------------------------

def test_platform_prices_are_the_api_list_price_globally_and_ten_percent_more_regionally(
        project: Path) -> None:
    settings = load_settings(project)
    usage = Usage(input_tokens=1_000_000, output_tokens=100_000, cache_read_input_tokens=500_000)
    api = call_cost(settings.pricing, "claude-sonnet-5-5", usage).total
    for platform in ("bedrock", "vertex"):
        global_ = platform_pricing(settings.pricing, platform, regional=False)
        regional = platform_pricing(settings.pricing, platform, regional=True)
        assert call_cost(global_, "claude-sonnet-5-5", usage).total == pytest.approx(api)
        assert call_cost(regional, "claude-sonnet-5-5", usage).total == pytest.approx(api * 1.10)
        assert regional.priced_for == f"{platform} (regional, +10%)"
        assert platform in regional.source and settings.pricing.platforms[platform].as_of in regional.source
    # The long-context tier is scaled too.
    long = Usage(input_tokens=200_000, output_tokens=1_000)
    regional = platform_pricing(settings.pricing, "vertex", regional=True)
    assert call_cost(regional, "claude-haiku-5-5", long).total == pytest.approx(
        call_cost(settings.pricing, "claude-haiku-5-5", long).total * 1.10)


def test_a_price_overridden_in_evalkit_toml_is_what_the_user_pays_on_any_endpoint(project: Path) -> None:
    settings = _settings_with(project, '[pricing.models."claude-haiku-5-5"]\ninput = 0.2\noutput = 1.0\n'
                                       'cache_write_5m = 0.25\ncache_write_1h = 0.4\ncache_read = 0.02\n')
    regional = platform_pricing(settings.pricing, "bedrock", regional=True)
    assert regional.price_for("claude-haiku-5-5").input == 0.2
    assert regional.price_for("claude-sonnet-5-5").input == pytest.approx(2.2)


def test_evalkit_prices_says_how_the_platforms_price(project: Path) -> None:
    result = CliRunner().invoke(main, ["prices", "--project", str(project)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "bedrock (as of 2026-12-02): global cross-Region inference profile at the base price" in out
    assert "vertex (as of 2026-12-02): global endpoint at the base price" in out


# -- connecting, and batch mode ----------------------------------------------------------------------

def test_a_missing_region_says_which_file_and_what_to_set(project: Path) -> None:
    settings = load_settings(project)
    with pytest.raises(ConfigError) as caught:
        connect(settings, offline=False, platform="bedrock")
    assert str(project / "evalkit.toml") in caught.value.message
    assert "[bedrock] region" in (caught.value.hint or "") and "AWS_REGION" in (caught.value.hint or "")
    with pytest.raises(ConfigError) as caught:
        connect(settings, offline=False, platform="vertex")
    assert "[vertex] region" in (caught.value.hint or "") and "CLOUD_ML_REGION" in (caught.value.hint or "")


def test_regions_come_from_evalkit_toml_or_the_sdks_environment(project: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings_with(project, '[vertex]\nregion = "us-east5"\nproject_id = "acme-ml"\n')
    vertex = connect(settings, offline=False, platform="vertex")
    assert vertex.kind == "api" and vertex.platform == "vertex"
    assert vertex.provider.endpoint == "vertex:acme-ml, us-east5"
    assert vertex.pricing is not None and vertex.pricing.priced_for == "vertex (regional, +10%)"
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    bedrock = connect(settings, offline=False, platform="bedrock")
    assert bedrock.provider.endpoint == "bedrock:eu-central-1, global inference profile"
    assert bedrock.pricing is not None and bedrock.pricing.priced_for == "bedrock (global)"


def test_batch_mode_falls_back_to_realtime_with_a_note_and_detach_is_refused(project: Path,
                                                                              monkeypatch: pytest.MonkeyPatch
                                                                              ) -> None:
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    backend = connect(load_settings(project), offline=False, platform="bedrock")
    assert not backend.supports_batch
    mode, note = run_mode(backend, "batch")
    assert mode == "realtime" and note is not None and "no 50% batch discount" in note
    assert run_mode(backend, "realtime") == ("realtime", None)
    with pytest.raises(UsageError, match="--detach"):
        run_mode(backend, "batch", detach=True)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    api = connect(load_settings(project), offline=False)
    assert api.supports_batch and run_mode(api, "batch") == ("batch", None)


def test_the_estimate_on_bedrock_claims_no_batch_discount(project: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from evalkit.api import estimate_task

    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    bedrock = estimate_task(_task(project, "bedrock"), mode="batch", offline=False, sample_size=30)
    demo = project / "tasks" / "triage.yaml"
    realtime = estimate_task(demo, mode="realtime", offline=False, sample_size=30)
    batch = estimate_task(demo, mode="batch", offline=False, sample_size=30)
    assert bedrock.requests_to_send == realtime.requests_to_send == 60
    assert bedrock.expected_usd == pytest.approx(realtime.expected_usd)
    assert batch.batch and not bedrock.batch and not realtime.batch
    assert bedrock.upper_bound_usd == pytest.approx(realtime.upper_bound_usd)
    assert bedrock.upper_bound_usd > batch.upper_bound_usd * 1.5  # the upper bound shows the 50%


def _request(model: str = "claude-haiku-5-5") -> ModelRequest:
    return ModelRequest(role="candidate", sample_id="s1",
                        params={"model": model, "max_tokens": 64,
                                "messages": [{"role": "user", "content": "My invoice is wrong."}]})


def test_bedrock_without_aws_credentials_is_an_auth_error_naming_the_credential_chain() -> None:
    provider = AnthropicProvider(
        connect=lambda: make_platform_client("bedrock", region="us-east-1", max_retries=0, timeout_s=5,
                                             base_url="http://127.0.0.1:9"),
        endpoint="bedrock:test", platform="bedrock", model_ids={"claude-haiku-5-5": "anthropic.x"})
    with pytest.raises(AuthError) as caught:
        asyncio.run(provider.generate(_request()))
    assert "Amazon Bedrock" in caught.value.message
    hint = caught.value.hint or ""
    assert "AWS_ACCESS_KEY_ID" in hint and "[bedrock] region" in hint


def test_vertex_without_application_default_credentials_is_an_auth_error(monkeypatch: pytest.MonkeyPatch
                                                                          ) -> None:
    from google.auth.compute_engine import _metadata

    monkeypatch.setattr(_metadata, "_NO_GCE_CHECK", True)  # do not probe the GCE metadata server (~10 s)
    provider = AnthropicProvider(
        connect=lambda: make_platform_client("vertex", region="global", project_id="p", max_retries=0,
                                             timeout_s=5, base_url="http://127.0.0.1:9/v1"),
        endpoint="vertex:test", platform="vertex", model_ids={"claude-haiku-5-5": "claude-haiku-5-5"})
    with pytest.raises(AuthError) as caught:
        asyncio.run(provider.generate(_request()))
    assert "Google Vertex AI" in caught.value.message and "DefaultCredentialsError" in caught.value.message
    assert "application-default login" in (caught.value.hint or "")


def test_bedrock_counts_tokens_locally_where_its_sdk_client_cannot() -> None:
    provider = AnthropicProvider(connect=lambda: None, endpoint="bedrock:test",  # type: ignore[arg-type,return-value]
                                 platform="bedrock", model_ids={"claude-haiku-5-5": "anthropic.x"})
    assert asyncio.run(provider.count_tokens(_request())) > 0  # no client call: the lambda returns None


# -- end to end on the simulator ---------------------------------------------------------------------

def _run(task: Path, *args: str, env: dict[str, str] | None = None, quiet: bool = True) -> Any:
    result = CliRunner().invoke(main, ["run", str(task), *(["--quiet"] if quiet else []), "-n", "20", *args],
                                env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _summary(folder: Path) -> dict[str, Any]:
    return dict(json.loads((folder / "summary.json").read_text()))


def _answers(folder: Path) -> dict[str, tuple[str, str]]:
    rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    return {row["id"]: (row["candidate"]["output"], row["reference"]["output"]) for row in rows}


PATHS = {
    "bedrock": ("/model/global.anthropic.claude-haiku-5-5/invoke",
                "/model/global.anthropic.claude-sonnet-5-5/invoke"),
    "vertex": ("/v1/projects/evalkit-simulator/locations/global/publishers/anthropic/models/"
               "claude-haiku-5-5:rawPredict",
               "/v1/projects/evalkit-simulator/locations/global/publishers/anthropic/models/"
               "claude-sonnet-5-5:rawPredict"),
}


@pytest.mark.e2e
@pytest.mark.parametrize("platform", ["bedrock", "vertex"])
def test_the_demo_runs_offline_on_each_platform_with_the_first_party_answers(project: Path,
                                                                              platform: str) -> None:
    first_party = _run(project / "tasks" / "triage.yaml", "--mode", "realtime", "--run-id", "api")
    assert "SIMULATED" in first_party.output
    ledger = project / ".evalkit" / "simulator" / "billing.jsonl"
    before = len(Ledger.read(ledger))
    result = _run(_task(project, platform), "--run-id", platform, quiet=False)  # the default --mode batch
    assert "has no Message Batches API in the SDK" in result.output
    summary = _summary(project / "reports" / "triage" / platform)
    provenance = summary["provenance"]
    assert provenance["simulated"] is True and provenance["mode"] == "realtime"
    assert provenance["backend"]["platform"] == platform and provenance["backend"]["kind"] == "simulator"
    assert provenance["pricing"]["priced_for"] == f"{platform} (global)"
    # The SDK's own platform client sent every request on the platform's path, with its model ids.
    billed = Ledger.read(ledger)[before:]
    assert len(billed) == 40 and {entry["path"] for entry in billed} == set(PATHS[platform])
    assert {entry["mode"] for entry in billed} == {"realtime"}
    # Same simulated models, same answers as the Claude API route; same prices on the global endpoint.
    assert _answers(project / "reports" / "triage" / platform) == _answers(project / "reports" / "triage"
                                                                           / "api")
    api = _summary(project / "reports" / "triage" / "api")
    assert summary["cost_usd"]["answers"] == pytest.approx(api["cost_usd"]["answers"])
    report = (project / "reports" / "triage" / platform / "report.html").read_text()
    name = {"bedrock": "Amazon Bedrock", "vertex": "Google Vertex AI"}[platform]
    assert f"simulator speaking {name}" in report


@pytest.mark.e2e
def test_the_demo_runs_on_each_platform_against_sim_serve(project: Path, tmp_path: Path) -> None:
    server, port = serve_simulator(project, tmp_path / "state", tmp_path / "log.txt")
    try:
        env = {"ANTHROPIC_BEDROCK_BASE_URL": f"http://127.0.0.1:{port}", "AWS_REGION": "us-west-2",
               "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEEXAMPLE12", "AWS_SECRET_ACCESS_KEY": "example-secret"}
        _run(_task(project, "bedrock"), "--run-id", "bedrock", env=env)
        env = {"ANTHROPIC_VERTEX_BASE_URL": f"http://127.0.0.1:{port}/v1", "CLOUD_ML_REGION": "us-east5",
               "ANTHROPIC_VERTEX_PROJECT_ID": "acme-ml", "EVALKIT_VERTEX_ACCESS_TOKEN": "ya29.example"}
        _run(_task(project, "vertex"), "--run-id", "vertex", env=env)
    finally:
        server.terminate()
        server.wait(timeout=30)
    billed = Ledger.read(tmp_path / "state" / "billing.jsonl")
    assert len(billed) == 80
    assert {e["path"] for e in billed[:40]} == set(PATHS["bedrock"])
    assert {e["path"] for e in billed[40:]} == {
        "/v1/projects/acme-ml/locations/us-east5/publishers/anthropic/models/claude-haiku-5-5:rawPredict",
        "/v1/projects/acme-ml/locations/us-east5/publishers/anthropic/models/claude-sonnet-5-5:rawPredict"}
    for platform in ("bedrock", "vertex"):
        provenance = _summary(project / "reports" / "triage" / platform)["provenance"]
        # Reached over HTTP like the real service, recognised as the simulator by its header.
        assert provenance["backend"]["kind"] == "api" and provenance["simulated"] is True
        assert provenance["backend"]["platform"] == platform
    vertex = _summary(project / "reports" / "triage" / "vertex")
    assert vertex["provenance"]["pricing"]["priced_for"] == "vertex (regional, +10%)"


# -- the simulator is as strict as the platforms -----------------------------------------------------

def _post(app: Any, path: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    import httpx2

    async def send() -> Any:
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://sim") as http:
            return await http.post(path, json=body, headers=headers or {})

    response = asyncio.run(send())
    return response.status_code, response.json(), response.headers


BODY = {"max_tokens": 64, "messages": [{"role": "user", "content": "My invoice is wrong."}]}
VERTEX = "/v1/projects/p/locations/global/publishers/anthropic/models/"


@pytest.fixture
def sim_app(project: Path) -> Any:
    from evalkit.sim import Simulator

    return Simulator(load_settings(project), state_dir=project / "state").app


def _signed(body: dict[str, Any], model_id: str) -> dict[str, str]:
    """Headers the SDK's SigV4 signer (botocore) puts on a Bedrock request."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="POST", url=f"http://sim/model/{model_id}/invoke", data=json.dumps(body),
                         headers={"content-type": "application/json"})
    SigV4Auth(Credentials("AKIAEXAMPLEEXAMPLE12", "secret"), "bedrock", "us-east-1").add_auth(request)
    return dict(request.headers)


@pytest.mark.e2e
def test_bedrock_route_rejects_what_bedrock_rejects(sim_app: Any) -> None:
    good = {**BODY, "anthropic_version": "bedrock-2023-05-31"}
    status, body, headers = _post(sim_app, "/model/global.anthropic.claude-haiku-5-5/invoke", good)
    assert status == 403 and body == {"message": "Missing Authentication Token"}
    assert headers["x-amzn-ErrorType"].startswith("MissingAuthenticationTokenException")
    status, body, _ = _post(sim_app, "/model/global.anthropic.claude-haiku-5-5/invoke", good,
                            {"authorization": "AWS4-HMAC-SHA256 nonsense"})
    assert status == 403 and "Signature" in body["message"]
    model = "global.anthropic.claude-haiku-5-5"
    cases = [
        ({**good, "anthropic_version": "2026-10-21"}, model, 400, "anthropic_version"),
        ({**good, "model": "claude-haiku-5-5"}, model, 400, "model"),
        (good, "claude-haiku-5-5", 400, "model identifier is invalid"),  # the Claude API's id
        (good, "global.anthropic.claude-haiku-9", 400, "model identifier is invalid"),
        ({**good, "temperature": 0.2}, model, 400, "temperature"),  # the Messages API's own rules hold
    ]
    for body_sent, model_id, expected, says in cases:
        status, body, headers = _post(sim_app, f"/model/{model_id}/invoke", body_sent,
                                      _signed(body_sent, model_id))
        assert status == expected and says in body["message"], (body_sent, model_id, body)
        assert headers["x-amzn-ErrorType"].startswith("ValidationException")
    status, body, _ = _post(sim_app, f"/model/{model}/invoke", good, _signed(good, model))
    assert status == 200 and body["type"] == "message" and body["content"]


@pytest.mark.e2e
def test_vertex_route_rejects_what_vertex_rejects(sim_app: Any) -> None:
    good = {**BODY, "anthropic_version": "vertex-2023-10-16"}
    bearer = {"authorization": "Bearer ya29.example"}
    status, body, _ = _post(sim_app, VERTEX + "claude-haiku-5-5:rawPredict", good)
    assert status == 401 and body["error"]["status"] == "UNAUTHENTICATED"
    status, body, _ = _post(sim_app, VERTEX + "claude-haiku-5-5:rawPredict", good,
                            {"authorization": "Bearer "})
    assert status == 401
    status, body, _ = _post(sim_app, VERTEX + "claude-haiku-5-5:rawPredict",
                            {**good, "anthropic_version": "bedrock-2023-05-31"}, bearer)
    assert status == 400 and "vertex-2023-10-16" in body["error"]["message"]
    status, body, _ = _post(sim_app, VERTEX + "claude-haiku-4-5:rawPredict", good, bearer)  # needs @date
    assert status == 404 and body["error"]["status"] == "NOT_FOUND"
    status, body, _ = _post(sim_app, VERTEX + "claude-haiku-4-5@20251001:rawPredict", good, bearer)
    assert status == 200 and body["type"] == "message", body
    counted = {"model": "claude-haiku-5-5", "anthropic_version": "vertex-2023-10-16",
               "messages": BODY["messages"]}
    status, body, _ = _post(sim_app, VERTEX + "count-tokens:rawPredict", counted, bearer)
    assert status == 200 and body["input_tokens"] > 0
    status, body, _ = _post(sim_app, VERTEX + "count-tokens:rawPredict", {**counted, "max_tokens": 5}, bearer)
    assert status == 400  # count_tokens takes no max_tokens, on Vertex as on the Claude API


@pytest.mark.e2e
def test_the_sdks_default_anthropic_version_is_rejected_which_is_why_evalkit_sends_the_documented_one(
        sim_app: Any) -> None:
    """SDK 2.15's platform clients put the Claude API's version (2026-10-21) in the body unless told
    otherwise; the platforms document only their own values."""
    import anthropic

    from evalkit.backends import SIMULATOR_AWS_KEYS

    client = make_platform_client("bedrock", region="us-east-1", max_retries=0, timeout_s=30,
                                  base_url="http://sim", aws_keys=SIMULATOR_AWS_KEYS, asgi_app=sim_app)
    params = {"model": "global.anthropic.claude-haiku-5-5", **BODY}

    async def send(**extra: Any) -> Any:
        return await client.messages.create(**params, **extra)

    with pytest.raises(anthropic.BadRequestError, match="anthropic_version"):
        asyncio.run(send())
    message = asyncio.run(send(extra_body={"anthropic_version": PLATFORM_VERSIONS["bedrock"]}))
    assert message.content


@pytest.mark.e2e
def test_offline_bedrock_works_with_a_bedrock_api_key_in_the_environment(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK takes AWS_BEARER_TOKEN_BEDROCK over keys (and refuses both): the simulator must not care."""
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-example")
    backend = connect(load_settings(project), offline=True, platform="bedrock")
    response = asyncio.run(backend.provider.generate(_request()))
    assert response.simulated and response.message["content"]


@pytest.mark.e2e
def test_vertex_counts_tokens_through_its_endpoint_and_maps_errors_to_platform_hints(project: Path) -> None:
    backend: Backend = connect(load_settings(project), offline=True, platform="vertex")
    assert asyncio.run(backend.provider.count_tokens(_request())) > 0
    provider = AnthropicProvider(connect=backend.provider._connect, endpoint="x", platform="vertex",
                                 model_ids={"claude-haiku-5-5": "claude-haiku-9-9"})
    with pytest.raises(ModelNotFoundError) as caught:
        asyncio.run(provider.generate(_request()))
    assert "Google Vertex AI" in caught.value.message and "[vertex.models]" in (caught.value.hint or "")
